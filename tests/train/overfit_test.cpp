// A tiny GPT-2 trained with the trainer's pieces (train::clm_loss, train::Optimizer's AdamW) on ONE
// fixed batch of random tokens memorises it: the loss starts at ln(vocab), as an untrained model's
// must, and falls below 0.05 (the model then puts about 95% on every target). Random tokens cannot be
// predicted, so a fresh batch keeps a loss near ln(vocab): that rules out a model that reaches zero
// by seeing its targets (a shifted-window or causal-mask bug) rather than by learning.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "train/objectives.hpp"
#include "train/optimizer.hpp"
#include "train/run_config.hpp"

namespace ld::train {
namespace {

constexpr int64_t kVocab = 64, kBatch = 4, kSeq = 16;

struct Window {
  Tensor inputs, targets;  // i64 [B, T]
};

Window random_window(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, kVocab - 1);
  std::vector<int64_t> inputs, targets;
  for (int64_t b = 0; b < kBatch; ++b) {
    std::vector<int64_t> w(kSeq + 1);
    for (auto& id : w) id = pick(rng);
    inputs.insert(inputs.end(), w.begin(), w.end() - 1);
    targets.insert(targets.end(), w.begin() + 1, w.end());
  }
  return {from_vector(inputs, {kBatch, kSeq}), from_vector(targets, {kBatch, kSeq})};
}

std::unique_ptr<models::CausalLM> tiny_gpt2() {
  models::StackConfig s;
  s.kind = models::StackKind::gpt2;
  s.n_layer = 2, s.n_head = 2, s.n_kv_head = 2, s.n_embd = 32, s.intermediate_size = 128;
  s.vocab_size = kVocab, s.n_positions = kSeq;
  Generator gen(7);
  return models::make_causal_lm(io::make_hf_config(s, /*tie_word_embeddings=*/true), gen);
}

double eval_loss(const models::CausalLM& model, const Window& w) {
  autograd::NoGradGuard no_grad;
  return clm_loss(model, w.inputs, w.targets).loss.item();
}

// One thread: this model's products are far too small to gain from a second, and on a loaded
// machine each parallel region's fork-join costs more than the work (2.5 s instead of 50 ms).
struct OneThread {
  int saved = num_threads();
  OneThread() { set_num_threads(1); }
  ~OneThread() { set_num_threads(saved); }
};

TEST(Overfit, TinyGpt2MemorisesOneFixedBatch) {
  OneThread one_thread;
  const auto model = tiny_gpt2();
  TrainSection t;
  t.lr = 1e-2;  // constant: no schedule, no clipping; memorising 64 tokens needs no care
  t.beta1 = 0.9, t.beta2 = 0.999, t.weight_decay = 0.0;
  Optimizer optimizer(model->named_parameters(), t);
  const Window batch = random_window(1);
  const double ln_vocab = std::log(double(kVocab));

  double first = 0, loss = 0;
  int steps = 0;
  constexpr int kMaxSteps = 150;  // reached in about 30
  for (; steps < kMaxSteps; ++steps) {
    optimizer.zero_grad();
    const LossParts parts = clm_loss(*model, batch.inputs, batch.targets);
    loss = parts.loss.item();
    if (steps == 0) first = loss;
    if (loss < 0.05) break;
    parts.loss.backward();
    optimizer.step();
  }
  RecordProperty("steps", steps);
  EXPECT_NEAR(first, ln_vocab, 0.3) << "an untrained model's loss is about ln(vocab)";
  EXPECT_LT(loss, 0.05) << "after " << steps << " steps";
  EXPECT_LT(steps, kMaxSteps);
  EXPECT_GT(eval_loss(*model, random_window(2)), ln_vocab - 0.5) << "an unseen random batch cannot be predicted";
}

}  // namespace
}  // namespace ld::train
