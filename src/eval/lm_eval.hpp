#pragma once
// Model-based evaluation, the core: the log-likelihood a causal LM gives continuations of contexts
// (batched, right-padded: a causal model's real tokens never attend to padding that follows them,
// so no mask is needed and every row scores what it would alone), and perplexity over documents.
//
// Log-likelihoods follow lm-evaluation-harness: the model reads context + continuation minus its
// last token, cut on the left to the model's context when longer, and the continuation's tokens are
// scored by the positions before them; `greedy` says whether each was the argmax. Sums are in
// float64 from float32 logits.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ld::tok {
class Tokenizer;
}
namespace ld::models {
class CausalLM;
}

namespace ld::eval {

struct LoglikRequest {
  std::vector<int64_t> context;       // at least one token (BOS when the context is empty)
  std::vector<int64_t> continuation;  // at least one token
};

struct LoglikResult {
  double logprob = 0;   // sum over the continuation's tokens of log p(token | everything before it)
  bool greedy = false;  // every continuation token was the most probable one
  int64_t tokens = 0;   // continuation tokens
};

struct LmEvalOptions {
  int64_t batch_size = 8;
  int64_t max_length = 0;  // tokens the model reads at once, at most (and by default, 0) its max_position_embeddings
};

// done, total: requests (or items) finished so far; called with done = 0 before the work starts.
using ProgressFn = std::function<void(size_t done, size_t total)>;

std::vector<LoglikResult> loglikelihood(const models::CausalLM& model, const std::vector<LoglikRequest>& requests,
                                        const LmEvalOptions& options = {}, const ProgressFn& progress = {});

// The tokens the tokenizer puts before any text when special tokens are added (BOS for LLaMA, none
// for GPT-2); a suffix it would add (EOS) is never used for scoring or prompting.
std::vector<int64_t> special_prefix(const tok::Tokenizer& tokenizer);

// Harness tokenization of a (context, continuation) pair: trailing whitespace of the context moves to
// the front of the continuation; whole = prefix + encode(context + continuation) and
// context = prefix + encode(context); the continuation is whole's tokens after context's count.
// An empty context with no prefix gets bos_id (the harness's prefix token); bos_id < 0 = none, error.
LoglikRequest encode_request(const tok::Tokenizer& tokenizer, const std::vector<int64_t>& prefix,
                             const std::string& context, const std::string& continuation, int64_t bos_id);

// Perplexity of documents (token ids, BOS included as the tokenizer added it). Each document is cut
// into disjoint windows of max_length tokens (stride = the window, no overlap); within a window
// every token but the first is predicted from the ones before it in that window, so a document of
// n tokens scores n - ceil(n / max_length) tokens (windows counts those that predict something).
// ppl = exp(nll / tokens), as eval::perplexity_from_total.
struct PerplexityResult {
  int64_t documents = 0, windows = 0, tokens = 0;
  int64_t window = 0;  // max_length used
  double nll = 0;      // summed, natural log
  double ppl = 0;
};

PerplexityResult document_perplexity(const models::CausalLM& model, const std::vector<std::vector<int64_t>>& documents,
                                     const LmEvalOptions& options = {}, const ProgressFn& progress = {});

}  // namespace ld::eval
