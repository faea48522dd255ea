#include "infer/generate.hpp"

#include <algorithm>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "models/llama.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::infer {

namespace {

// The last position's logits of [1, T, V] as host floats (the model may run in bf16 or on a device).
std::vector<float> last_logits(const Tensor& logits) {
  return logits.narrow(1, logits.size(1) - 1, 1).to(DType::f32).to(kCPU).contiguous().to_vector<float>();
}

bool ends_with_stop(const std::vector<int32_t>& generated, const GenerateOptions& options) {
  if (options.stop_strings.empty()) return false;
  // Whole generated text: a stop string may span tokens, and a window could cut a multi-byte piece.
  // Quadratic in the output length, but only when stop strings are given.
  const std::string text = options.tokenizer->decode(generated);
  return std::any_of(options.stop_strings.begin(), options.stop_strings.end(), [&](const std::string& s) {
    return !s.empty() && text.size() >= s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0;
  });
}

void check_inputs(const models::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                  const GenerateOptions& options) {
  const int64_t limit = model.config().n_positions;
  const int64_t vocab = model.config().vocab_size;
  LD_CHECK(!prompt.empty(), "generate: the prompt is empty (give at least one token, e.g. BOS)");
  LD_CHECK(options.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", options.max_new_tokens);
  LD_CHECK(static_cast<int64_t>(prompt.size()) <= limit, "generate: the prompt has ", prompt.size(),
           " tokens, more than the model's max_position_embeddings (", limit, ")");
  LD_CHECK(static_cast<int64_t>(prompt.size()) < limit || options.max_new_tokens == 0, "generate: the prompt has ",
           prompt.size(), " tokens but the model's max_position_embeddings is ", limit,
           ", which leaves no room to generate");
  for (int64_t id : prompt)
    LD_CHECK(id >= 0 && id < vocab, "generate: prompt token id ", id, " is outside the vocabulary [0, ", vocab, ")");
  LD_CHECK(options.stop_strings.empty() || options.tokenizer != nullptr,
           "generate: stop strings need a tokenizer to decode the generated text");
  validate(options.sampling);
}

}  // namespace

std::vector<int32_t> generate(const models::LlamaForCausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options, const OnToken& on_token) {
  check_inputs(model, prompt, options);
  autograd::NoGradGuard no_grad;
  const int64_t prompt_len = static_cast<int64_t>(prompt.size());
  const int64_t steps = std::min(options.max_new_tokens, model.config().n_positions - prompt_len);
  std::vector<int32_t> generated;
  if (steps <= 0) return generated;

  // The cache holds every token fed: the prompt and all generated tokens but the last.
  models::KvCache cache = model.make_cache(1, prompt_len + steps - 1);
  Sampler sampler(options.sampling, options.seed);
  std::vector<int32_t> context(prompt.begin(), prompt.end());  // repetition penalty sees the prompt too
  Tensor logits = model.forward(from_vector(prompt, {1, prompt_len}), &cache);
  for (int64_t step = 0; step < steps; ++step) {
    const int32_t next = sampler.sample(last_logits(logits), context);
    generated.push_back(next);
    context.push_back(next);
    if (on_token) on_token(next);
    if (options.eos_id && next == *options.eos_id) break;
    if (ends_with_stop(generated, options)) break;
    if (step + 1 < steps) logits = model.forward(from_vector(std::vector<int64_t>{next}, {1, 1}), &cache);
  }
  return generated;
}

}  // namespace ld::infer
