#pragma once
// Autoregressive generation with a KV cache, for one prompt or a batch of prompts of different
// lengths: the prompts are run once (prefill), then one token per step is sampled (infer::Sampler)
// and fed back.
//
// The prompts go through model.run(); the decode steps through infer::DecodeStep when the model
// allows it (decode_step.hpp), else model.run() too.
//
// A batch is left-padded with an attention mask, as Hugging Face generate() does it (positions
// count real tokens only, no query sees padding), so each row yields what it would alone. Each row
// has its own Sampler seeded with seed + row.
//
// Stopping follows Hugging Face generate(): on any of eos_ids (the EOS token IS part of the output, as HF
// returns it), after max_new_tokens, or when the decoded generated text ends with a stop string (the
// token completing it is kept, as HF's StopStringCriteria does). In a batch a finished row stops
// growing while the others go on.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "infer/sampling.hpp"

namespace ld::tok {
class Tokenizer;
}
namespace ld::models {
class CausalLM;
}

namespace ld::infer {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;  // temperature 0 = greedy
  uint64_t seed = 0;
  std::vector<int32_t> eos_ids;  // e.g. HfModelConfig::eos_token_ids
  std::vector<std::string> stop_strings;  // need `tokenizer` to decode
  const tok::Tokenizer* tokenizer = nullptr;
  // Decode with infer::DecodeStep where the model allows it (the same logits, less overhead per
  // token); false always takes the general forward, e.g. to compare the two.
  bool fused_decode = true;
};

// Called with each new token (and its row in the batch) as soon as it is chosen.
using OnToken = std::function<void(int32_t)>;
using OnBatchToken = std::function<void(int64_t row, int32_t token)>;

// Returns the generated ids (not the prompt). The cache holds prompt + max_new_tokens, capped at the
// model's max_position_embeddings; a prompt that is empty or alone fills that limit throws ld::Error.
// Runs without recording autograd.
std::vector<int32_t> generate(const models::CausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options, const OnToken& on_token = {});

// One result per prompt, in order; the longest prompt sets the cap on new tokens.
std::vector<std::vector<int32_t>> generate_batch(const models::CausalLM& model,
                                                 const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& options, const OnBatchToken& on_token = {});

}  // namespace ld::infer
