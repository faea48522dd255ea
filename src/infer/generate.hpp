#pragma once
// Autoregressive generation for one prompt with a KV cache: the prompt is run once (prefill), then
// one token per step is sampled (infer::Sampler) and fed back.
//
// Stopping follows Hugging Face generate(): on eos_id (the EOS token IS part of the output, as HF
// returns it), after max_new_tokens, or when the decoded generated text ends with a stop string (the
// token completing it is kept, as HF's StopStringCriteria does).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "infer/sampling.hpp"

namespace ld::tok {
class Tokenizer;
}
namespace ld::models {
class LlamaForCausalLM;
}

namespace ld::infer {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;  // temperature 0 = greedy
  uint64_t seed = 0;
  std::optional<int32_t> eos_id;
  std::vector<std::string> stop_strings;  // need `tokenizer` to decode
  const tok::Tokenizer* tokenizer = nullptr;
};

// Called with each new token as soon as it is chosen.
using OnToken = std::function<void(int32_t)>;

// Returns the generated ids (not the prompt). The cache holds prompt + max_new_tokens, capped at the
// model's max_position_embeddings; a prompt that is empty or alone fills that limit throws ld::Error.
// Runs without recording autograd.
std::vector<int32_t> generate(const models::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options, const OnToken& on_token = {});

}  // namespace ld::infer
