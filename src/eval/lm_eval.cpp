#include "eval/lm_eval.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "eval/perplexity.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::eval {

namespace {

// What the model reads for one request and which of its positions are scored.
struct Prepared {
  std::vector<int64_t> input;  // (context + continuation)[:-1], cut on the left to max_length
  std::vector<int64_t> targets;  // the continuation: predicted by the last targets.size() positions
};

Prepared prepare(const LoglikRequest& r, int64_t max_length, size_t index) {
  LD_CHECK(!r.context.empty(), "loglikelihood: request ", index, " has an empty context (give at least BOS)");
  LD_CHECK(!r.continuation.empty(), "loglikelihood: request ", index, " has an empty continuation");
  LD_CHECK(int64_t(r.continuation.size()) <= max_length, "loglikelihood: request ", index, "'s continuation has ",
           r.continuation.size(), " tokens, more than the ", max_length, " the model reads at once");
  Prepared p;
  p.input = r.context;
  p.input.insert(p.input.end(), r.continuation.begin(), r.continuation.end() - 1);
  if (int64_t(p.input.size()) > max_length) p.input.erase(p.input.begin(), p.input.end() - max_length);
  p.targets = r.continuation;
  return p;
}

// log p(target) and whether it is the argmax, from one row of float logits, in double.
std::pair<double, bool> score_token(const float* logits, int64_t vocab, int64_t target) {
  LD_CHECK(target >= 0 && target < vocab, "loglikelihood: token id ", target, " is outside the vocabulary (", vocab,
           ")");
  const float* best = std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(logits[v]) - double(*best));
  const double logprob = double(logits[target]) - double(*best) - std::log(sum);
  return {logprob, logits[target] == *best};
}

void score_batch(const models::CausalLM& model, const std::vector<Prepared>& prepared,
                 const std::vector<size_t>& rows, std::vector<LoglikResult>& results) {
  size_t longest = 0;
  for (size_t r : rows) longest = std::max(longest, prepared[r].input.size());
  const int64_t B = int64_t(rows.size()), T = int64_t(longest);
  std::vector<int64_t> ids(size_t(B * T), 0);  // right padding: nothing real attends to it
  for (int64_t b = 0; b < B; ++b) {
    const auto& in = prepared[rows[size_t(b)]].input;
    std::copy(in.begin(), in.end(), ids.begin() + b * T);
  }
  // The ids go where the weights are (a device, after nn::Module::to). Only the scored positions'
  // logits come back to the host, gathered where they are: a device's [B, T, V] would be GBs.
  const Device device = model.device();
  std::vector<int64_t> scored;  // rows of the flattened [B * T, V] logits, in scoring order
  for (int64_t b = 0; b < B; ++b) {
    const Prepared& p = prepared[rows[size_t(b)]];
    const int64_t first = int64_t(p.input.size() - p.targets.size());
    for (size_t j = 0; j < p.targets.size(); ++j) scored.push_back(b * T + first + int64_t(j));
  }
  const Tensor all = model.forward(from_vector(ids, {B, T}).to(device)).to(DType::f32);
  const int64_t V = all.size(2);
  const Tensor picked = ops::embedding(from_vector(scored, {int64_t(scored.size())}).to(device),
                                       all.reshape({B * T, V}));
  const Tensor logits = picked.to(kCPU).contiguous();
  const float* row = logits.data<float>();
  for (int64_t b = 0; b < B; ++b) {
    const Prepared& p = prepared[rows[size_t(b)]];
    LoglikResult& out = results[rows[size_t(b)]];
    out = {.logprob = 0, .greedy = true, .tokens = int64_t(p.targets.size())};
    for (size_t j = 0; j < p.targets.size(); ++j, row += V) {
      auto [logprob, greedy] = score_token(row, V, p.targets[j]);
      out.logprob += logprob;
      out.greedy = out.greedy && greedy;
    }
  }
}

int64_t resolve_max_length(const models::CausalLM& model, const LmEvalOptions& options) {
  LD_CHECK(options.batch_size >= 1, "--batch-size must be at least 1, got ", options.batch_size);
  LD_CHECK(options.max_length >= 0, "max_length must be >= 0 (0 = the model's context), got ", options.max_length);
  const int64_t context = model.config().n_positions;
  LD_CHECK(options.max_length <= context, "--max-length ", options.max_length, " is more than the model's context (",
           context, " tokens, max_position_embeddings)");
  return options.max_length > 0 ? options.max_length : context;
}

}  // namespace

std::vector<LoglikResult> loglikelihood(const models::CausalLM& model, const std::vector<LoglikRequest>& requests,
                                        const LmEvalOptions& options, const ProgressFn& progress) {
  const int64_t max_length = resolve_max_length(model, options);
  std::vector<Prepared> prepared;
  prepared.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) prepared.push_back(prepare(requests[i], max_length, i));
  // Longest first, so rows of a batch have similar lengths (little padding).
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return prepared[a].input.size() > prepared[b].input.size(); });
  autograd::NoGradGuard no_grad;
  std::vector<LoglikResult> results(requests.size());
  const size_t batch = size_t(options.batch_size);
  if (progress) progress(0, order.size());
  for (size_t start = 0; start < order.size(); start += batch) {
    const size_t end = std::min(order.size(), start + batch);
    score_batch(model, prepared, std::vector<size_t>(order.begin() + long(start), order.begin() + long(end)), results);
    if (progress) progress(end, order.size());
  }
  return results;
}

std::vector<int64_t> special_prefix(const tok::Tokenizer& tokenizer) {
  const std::vector<int32_t> with = tokenizer.encode("a", true), plain = tokenizer.encode("a", false);
  auto at = std::search(with.begin(), with.end(), plain.begin(), plain.end());
  if (plain.empty() || at == with.end()) return {};
  return std::vector<int64_t>(with.begin(), at);
}

LoglikRequest encode_request(const tok::Tokenizer& tokenizer, const std::vector<int64_t>& prefix,
                             const std::string& context, const std::string& continuation, int64_t bos_id) {
  const size_t last = context.find_last_not_of(" \t\n\r\f\v");  // Python's str.rstrip()
  const size_t kept = last == std::string::npos ? 0 : last + 1;
  const std::string ctx = context.substr(0, kept), cont = context.substr(kept) + continuation;
  auto encode = [&](const std::string& text) {
    std::vector<int64_t> ids = prefix;
    for (int32_t id : tokenizer.encode(text, false)) ids.push_back(id);
    return ids;
  };
  std::vector<int64_t> whole = encode(ctx + cont), context_ids = encode(ctx);
  LoglikRequest r;
  r.continuation.assign(whole.begin() + long(std::min(context_ids.size(), whole.size())), whole.end());
  r.context = std::move(context_ids);
  if (r.context.empty()) {
    LD_CHECK(bos_id >= 0, "an empty context needs a BOS token, and neither the tokenizer nor config.json has one");
    r.context = {bos_id};
  }
  LD_CHECK(!r.continuation.empty(), "the continuation '", continuation, "' of context '", context,
           "' encodes to no tokens of its own");
  return r;
}

PerplexityResult document_perplexity(const models::CausalLM& model, const std::vector<std::vector<int64_t>>& documents,
                                     const LmEvalOptions& options, const ProgressFn& progress) {
  const int64_t window = resolve_max_length(model, options);
  LD_CHECK(window >= 2, "perplexity: a window of ", window, " tokens predicts nothing (needs at least 2)");
  std::vector<LoglikRequest> requests;
  for (const auto& doc : documents)
    for (size_t start = 0; start + 1 < doc.size(); start += size_t(window)) {
      const size_t end = std::min(doc.size(), start + size_t(window));
      requests.push_back({{doc[start]}, std::vector<int64_t>(doc.begin() + long(start) + 1, doc.begin() + long(end))});
    }
  PerplexityResult r;
  r.documents = int64_t(documents.size());
  r.window = window;
  r.windows = int64_t(requests.size());
  LD_CHECK(!requests.empty(), "perplexity: no document has two tokens, so there is nothing to predict");
  for (const LoglikResult& s : loglikelihood(model, requests, options, progress)) {
    r.nll -= s.logprob;
    r.tokens += s.tokens;
  }
  r.ppl = perplexity_from_total(r.nll, double(r.tokens));
  return r;
}

}  // namespace ld::eval
