#pragma once
// What the training-step benchmarks share with the peer's bench_train.py: its model shapes
// (CONFIGS), its AdamW settings and random-token batches.
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "models/causal_lm.hpp"
#include "train/run_config.hpp"

namespace ld::bench {

struct BenchConfig {
  models::StackConfig stack;
  int64_t batch = 0;
};

// bench_train.py's CONFIGS: (n_layer, n_head, n_embd, vocab, T, B); nullopt for an unknown name.
inline std::optional<BenchConfig> bench_config(const std::string& name) {
  BenchConfig c;
  models::StackConfig& s = c.stack;
  if (name == "tiny") s.n_layer = 4, s.n_head = 4, s.n_embd = 256, s.vocab_size = 8192, s.n_positions = 256, c.batch = 8;
  else if (name == "small")
    s.n_layer = 6, s.n_head = 6, s.n_embd = 384, s.vocab_size = 8192, s.n_positions = 256, c.batch = 8;
  else if (name == "gpt2-124M")
    s.n_layer = 12, s.n_head = 12, s.n_embd = 768, s.vocab_size = 50257, s.n_positions = 1024, c.batch = 1;
  else return std::nullopt;
  s.n_kv_head = s.n_head;
  s.kind = models::StackKind::gpt2;
  s.intermediate_size = 4 * s.n_embd;
  return c;
}

// The peer's optimizer: AdamW, lr 3e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.1 on matrices.
inline train::TrainSection peer_optimizer_settings() {
  train::TrainSection t;
  t.optimizer = "adamw";
  t.lr = 3e-4;
  t.beta1 = 0.9, t.beta2 = 0.999, t.eps = 1e-8;
  t.weight_decay = 0.1;
  return t;
}

struct Batch {
  Tensor inputs, targets;  // i64 [B, T]: a random [B, T+1] window and its shift by one
};

// n batches of random ids; `seed` differs per data-parallel rank (each reads its own slice).
inline std::vector<Batch> random_batches(int n, int64_t B, int64_t T, int64_t vocab, uint64_t seed = 1234) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<Batch> out;
  for (int k = 0; k < n; ++k) {
    std::vector<int64_t> inputs, targets;
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> window(static_cast<size_t>(T + 1));
      for (auto& id : window) id = pick(rng);
      inputs.insert(inputs.end(), window.begin(), window.end() - 1);
      targets.insert(targets.end(), window.begin() + 1, window.end());
    }
    out.push_back({from_vector(inputs, {B, T}), from_vector(targets, {B, T})});
  }
  return out;
}

}  // namespace ld::bench
