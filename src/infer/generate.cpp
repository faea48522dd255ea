#include "infer/generate.hpp"

#include <algorithm>
#include <memory>
#include <span>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "infer/decode_step.hpp"
#include "models/causal_lm.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::infer {

namespace {

bool ends_with_stop(const std::vector<int32_t>& generated, const GenerateOptions& options) {
  if (options.stop_strings.empty()) return false;
  // Whole generated text: a stop string may span tokens, and a window could cut a multi-byte piece.
  // Quadratic in the output length, but only when stop strings are given.
  const std::string text = options.tokenizer->decode(generated);
  return std::any_of(options.stop_strings.begin(), options.stop_strings.end(), [&](const std::string& s) {
    return !s.empty() && text.size() >= s.size() && text.compare(text.size() - s.size(), s.size(), s) == 0;
  });
}

void check_inputs(const models::CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                  const GenerateOptions& options) {
  const int64_t limit = model.config().n_positions;
  const int64_t vocab = model.config().vocab_size;
  LD_CHECK(!prompts.empty(), "generate: no prompts given");
  LD_CHECK(options.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got ", options.max_new_tokens);
  for (size_t row = 0; row < prompts.size(); ++row) {
    const auto& prompt = prompts[row];
    const std::string which = prompts.size() > 1 ? "prompt " + std::to_string(row) : "the prompt";
    LD_CHECK(!prompt.empty(), "generate: ", which, " is empty (give at least one token, e.g. BOS)");
    LD_CHECK(static_cast<int64_t>(prompt.size()) <= limit, "generate: ", which, " has ", prompt.size(),
             " tokens, more than the model's max_position_embeddings (", limit, ")");
    LD_CHECK(static_cast<int64_t>(prompt.size()) < limit || options.max_new_tokens == 0, "generate: ", which,
             " has ", prompt.size(), " tokens but the model's max_position_embeddings is ", limit,
             ", which leaves no room to generate");
    for (int64_t id : prompt)
      LD_CHECK(id >= 0 && id < vocab, "generate: ", which, ": token id ", id, " is outside the vocabulary [0, ", vocab,
               ")");
  }
  LD_CHECK(options.stop_strings.empty() || options.tokenizer != nullptr,
           "generate: stop strings need a tokenizer to decode the generated text");
  validate(options.sampling);
}

// Row r's logits of the last position, [B, 1, V] -> host floats (the model may run in bf16 or on a device).
std::vector<float> host_logits(const Tensor& logits) {
  return logits.to(DType::f32).to(kCPU).contiguous().to_vector<float>();
}

// Left padding: row r is prompt r preceded by (longest - its length) pad tokens, masked out.
struct PaddedBatch {
  std::vector<int64_t> ids;   // [B, longest]
  std::vector<int64_t> mask;  // [B, longest + steps]: 1 for prompt and generated slots, 0 for padding
  int64_t longest = 0;
  bool uneven = false;
};

PaddedBatch left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t steps) {
  PaddedBatch p;
  for (const auto& prompt : prompts) p.longest = std::max<int64_t>(p.longest, int64_t(prompt.size()));
  const int64_t width = p.longest + steps;
  for (const auto& prompt : prompts) {
    const int64_t pad = p.longest - int64_t(prompt.size());
    p.uneven = p.uneven || pad > 0;
    p.ids.insert(p.ids.end(), size_t(pad), prompt.front());  // any valid id: it is masked out
    p.ids.insert(p.ids.end(), prompt.begin(), prompt.end());
    p.mask.insert(p.mask.end(), size_t(pad), 0);
    p.mask.insert(p.mask.end(), size_t(width - pad), 1);
  }
  return p;
}

}  // namespace

std::vector<std::vector<int32_t>> generate_batch(const models::CausalLM& model,
                                                 const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& options, const OnBatchToken& on_token) {
  check_inputs(model, prompts, options);
  autograd::NoGradGuard no_grad;
  const int64_t B = int64_t(prompts.size());
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, int64_t(p.size()));
  const int64_t steps = std::min(options.max_new_tokens, model.config().n_positions - longest);
  std::vector<std::vector<int32_t>> generated(static_cast<size_t>(B));
  if (steps <= 0) return generated;

  const PaddedBatch batch = left_pad(prompts, steps);
  const Device device = model.device();
  const Tensor full_mask = from_vector(batch.mask, {B, longest + steps}).to(device);
  auto mask_for = [&](int64_t total) { return batch.uneven ? full_mask.narrow(1, 0, total) : Tensor(); };
  // The cache holds every token fed: the prompts and all generated tokens but the last.
  models::KvCache cache = model.make_cache(B, longest + steps - 1);
  std::vector<Sampler> samplers;
  std::vector<std::vector<int32_t>> context(static_cast<size_t>(B));  // repetition penalty sees the prompt too
  for (int64_t r = 0; r < B; ++r) {
    samplers.emplace_back(options.sampling, options.seed + uint64_t(r));
    context[size_t(r)].assign(prompts[size_t(r)].begin(), prompts[size_t(r)].end());
  }
  std::vector<bool> done(static_cast<size_t>(B), false);
  std::vector<float> host = host_logits(model.run({.ids = from_vector(batch.ids, {B, longest}).to(device), .cache = &cache,
                                                   .attention_mask = mask_for(longest), .last_position_only = true})
                                             .logits);
  std::span<const float> rows = host;  // the last logits: host's, or the fused step's buffer
  const int64_t V = model.config().vocab_size;
  // The prefill above takes the general path; the decode steps take the fused one where it applies
  // (same logits, less overhead per token). Both write the same cache. The fused step is host code.
  std::unique_ptr<DecodeStep> fused;
  if (options.fused_decode && steps > 1 && device == kCPU && fused_decode_unsupported(model).empty())
    fused = std::make_unique<DecodeStep>(model, cache);
  // Without a repetition penalty, greedy decoding needs the argmax of the logits and top-k sampling
  // the k largest, which the fused step finds without computing them all (DecodeStep::run_greedy,
  // run_top_k).
  const SamplingOptions& sampling = options.sampling;
  const bool argmax_only = sampling.temperature == 0.0f && sampling.repetition_penalty == 1.0f;
  const bool top_k_only = !argmax_only && sampling.top_k > 0 && sampling.repetition_penalty == 1.0f;
  std::span<const int64_t> picked;  // the fused step's tokens, when it chose them
  std::vector<int64_t> pads(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) pads[size_t(r)] = longest - int64_t(prompts[size_t(r)].size());
  for (int64_t step = 0; step < steps; ++step) {
    std::vector<int64_t> fed(static_cast<size_t>(B));
    for (int64_t r = 0; r < B; ++r) {
      const size_t i = size_t(r);
      fed[i] = context[i].back();  // a finished row repeats its last token, ignored
      if (done[i]) continue;
      const int32_t next = !picked.empty() ? int32_t(picked[i])
                                           : samplers[i].sample(rows.subspan(size_t(r * V), size_t(V)), context[i]);
      generated[i].push_back(next);
      context[i].push_back(next);
      fed[i] = next;
      if (on_token) on_token(r, next);
      const bool eos = std::find(options.eos_ids.begin(), options.eos_ids.end(), next) != options.eos_ids.end();
      done[i] = eos || ends_with_stop(generated[i], options);
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; }) || step + 1 == steps) break;
    if (fused && argmax_only) {
      const DecodeStep::Greedy g = fused->run_greedy(fed, pads);
      picked = g.tokens, rows = g.logits;
      continue;
    }
    if (fused) {
      rows = top_k_only ? fused->run_top_k(fed, pads, sampling.top_k) : fused->run(fed, pads);
      continue;
    }
    host = host_logits(model.run({.ids = from_vector(fed, {B, 1}).to(device), .cache = &cache,
                                  .attention_mask = mask_for(longest + step + 1), .last_position_only = true})
                           .logits);
    rows = host;
  }
  return generated;
}

std::vector<int32_t> generate(const models::CausalLM& model, const std::vector<int64_t>& prompt,
                              const GenerateOptions& options, const OnToken& on_token) {
  OnBatchToken each;
  if (on_token) each = [&](int64_t, int32_t token) { on_token(token); };
  return generate_batch(model, {prompt}, options, each).front();
}

}  // namespace ld::infer
