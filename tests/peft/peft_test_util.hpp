#pragma once
// Tiny GPT-2 and LLaMA models for the PEFT tests, and helpers to randomise what PEFT initialises to
// zero (LoRA's B, the adapter's up projection) so that a test cannot pass on a no-op.
#include <memory>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "models/tiny_transformer.hpp"

namespace ld::peft::test {

inline models::StackConfig tiny_stack(models::StackKind kind) {
  models::StackConfig c;
  c.kind = kind;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = kind == models::StackKind::llama ? 2 : 4;
  c.n_embd = 16;
  c.vocab_size = 37;
  c.n_positions = 40;
  c.intermediate_size = 24;
  return c;
}

// The same weights for the same seed, so that two models can be compared.
inline std::unique_ptr<models::CausalLM> tiny_model(models::StackKind kind, uint64_t seed = 7, bool tied = true,
                                                    int64_t n_embd = 16) {
  models::StackConfig c = tiny_stack(kind);
  c.n_embd = n_embd;
  Generator gen(seed);
  auto lm = models::make_causal_lm(io::make_hf_config(c, tied), gen);
  // Larger than the 0.02 init, so that logits differ clearly between tokens and positions.
  autograd::NoGradGuard no_grad;
  Generator jitter(seed + 1000);
  for (auto& [name, t] : lm->named_parameters())
    if (t.dim() == 2) t.copy_(normal(t.shape(), 0.0f, 0.3f, &jitter));
  lm->eval();
  return lm;
}

inline Tensor ids_of(const std::vector<int64_t>& v, int64_t B) {
  return from_vector(v, {B, int64_t(v.size()) / B});
}

inline void randomize(const Tensor& t, uint64_t seed, float std = 0.3f) {
  Generator gen(seed);
  Tensor h = t;
  h.copy_(normal(t.shape(), 0.0f, std, &gen));
}

}  // namespace ld::peft::test
