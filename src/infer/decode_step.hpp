#pragma once
// One decode step (one new token per row) of a GPT-2 or a dense LLaMA-family model without the
// general forward's per-op overhead: no Tensor is allocated, no autograd node recorded, no shape
// re-checked per op. Buffers are sized once and reused every step, and the step calls the CPU
// backend's kernels directly (the same ones the general path reaches, in the same order), so its
// logits equal the general path's up to the summation order of a few kernels.
//
// It writes into the same models::KvCache as the general forward, so the prompt can be prefilled by
// model.run() and the tokens decoded here. Models it cannot run (fused_decode_unsupported says why)
// take the general path: MoE layers, attached projection adapters (LoRA, ...), a prompt-tuning
// prefix, weights off the CPU or of another dtype than f32/bf16, autocast.
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace ld::models {
class CausalLM;
class KvCache;
}  // namespace ld::models

namespace ld::infer {

// "" when DecodeStep can run `model`; otherwise why not (for logs and tests).
std::string fused_decode_unsupported(const models::CausalLM& model);

class DecodeStep {
 public:
  // Throws ld::Error when fused_decode_unsupported(model) is not empty, or when the cache does not
  // fit the model. Both must outlive this object; the cache's batch sets the rows of every step.
  DecodeStep(const models::CausalLM& model, models::KvCache& cache);
  ~DecodeStep();
  DecodeStep(const DecodeStep&) = delete;
  DecodeStep& operator=(const DecodeStep&) = delete;

  // tokens[b]: row b's new token. pad[b]: row b's left-padding slots at the start of the cache (as
  // generate_batch's attention mask has them): those keys are masked and row b's positions count
  // from the first slot after them. Appends the new keys and values and advances the cache by one.
  // Returns the logits [batch, vocab], valid until the next call.
  std::span<const float> run(std::span<const int64_t> tokens, std::span<const int64_t> pad);

  // run_greedy's answer: each row's token, or, when tokens is empty, the logits to choose from.
  struct Greedy {
    std::span<const int64_t> tokens;
    std::span<const float> logits;
  };
  // run() for greedy decoding: each row's argmax token, lowest id on ties, the argmax of exactly the
  // logits run() returns, found by infer::ScreenedHead without streaming the whole lm_head (its int8
  // copy is made on the first call). Where it cannot (a biased head, more than ScreenedHead::kMaxRows
  // rows, logits that are not finite) tokens is empty and logits holds run()'s.
  // Either way the step is taken once. The views are valid until the next call.
  Greedy run_greedy(std::span<const int64_t> tokens, std::span<const int64_t> pad);

  // run() for top-k sampling: logits [batch, vocab] that hold run()'s logit for every token that is
  // or ties with one of a row's k largest (a few more may be there), -inf for the others, found
  // the same way (infer::ScreenedHead). A top-k filter keeps the same tokens with the same logits.
  // Where it cannot screen, or k is a large share of the vocabulary, it returns run()'s logits.
  std::span<const float> run_top_k(std::span<const int64_t> tokens, std::span<const int64_t> pad, int64_t k);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ld::infer
