#pragma once
// The tasks of `liandan eval` on a causal LM and its tokenizer, built on eval/lm_eval.hpp:
//
// choice    Multiple choice by log-likelihood, as lm-evaluation-harness scores it: every choice is a
//           continuation " " + choice of the context; acc takes the argmax of the summed log-prob,
//           acc_norm the argmax of log-prob / the choice's length in bytes (UTF-8, without the " ").
//           Ties go to the first choice. Few-shot: the context is K examples, each written as
//           query + " " + its gold choice, joined by blank lines ("\n\n"), then a blank line and the
//           query. The examples come from a pool (another file, or the evaluated items without the
//           current one), K distinct ones drawn per item from a generator seeded by (seed, item
//           index), so a given item sees the same examples whatever the batch size.
// generate  Greedy generation from the prompt (BOS added as for scoring) until EOS, max_new_tokens,
//           or (stop_at_newline) a newline; the hypothesis is the decoded continuation, cut at the
//           first newline when stop_at_newline, with whitespace trimmed at both ends. Scores: corpus
//           BLEU (sacreBLEU defaults, every reference), ROUGE-1/2/L (rouge-score, no stemmer; with
//           several references the best F-measure per item, as rouge-score's score_multi, then the
//           mean) and exact match (the hypothesis equals any reference byte for byte).
// classify  For a causal LM: the label set (sorted labels of the data) scored as choices of the
//           context `prompt_template` with "{text}" replaced by the text (default "{text}\nLabel:",
//           so a label is scored as " " + label), predicted label = acc's argmax; few-shot examples
//           as for choice. Reported through eval::classification_report.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/bleu.hpp"
#include "eval/classification.hpp"
#include "eval/eval_data.hpp"
#include "eval/lm_eval.hpp"
#include "eval/rouge.hpp"

namespace ld::eval {

struct FewShotOptions {
  int64_t shots = 0;
  uint64_t seed = 0;
  const std::vector<ChoiceItem>* pool = nullptr;  // null: the evaluated items, without the current one
};

// The pool indices of item `index`'s examples. exclude: the pool index of the item itself, if there.
std::vector<size_t> sample_fewshot(size_t pool_size, std::optional<size_t> exclude, int64_t shots, uint64_t seed,
                                   size_t index);

// The context of item `index` (few-shot examples, then the query), as described above.
std::string choice_context(const std::vector<ChoiceItem>& items, size_t index, const FewShotOptions& fewshot);

struct ChoiceItemResult {
  std::vector<double> logliks;  // per choice
  int64_t pred = 0, pred_norm = 0;
};

struct ChoiceReport {
  int64_t total = 0, correct = 0, correct_norm = 0;
  double acc = 0, acc_norm = 0;
  std::vector<ChoiceItemResult> items;
};

// The metrics from the log-likelihoods (logliks[i][c]: item i, choice c).
ChoiceReport choice_report(const std::vector<ChoiceItem>& items, const std::vector<std::vector<double>>& logliks);

ChoiceReport evaluate_choice(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                             const std::vector<ChoiceItem>& items, const FewShotOptions& fewshot,
                             const LmEvalOptions& options = {}, const ProgressFn& progress = {});

struct GenerateTaskOptions {
  int64_t max_new_tokens = 64;
  bool stop_at_newline = false;
};

struct GenerateReport {
  std::vector<std::string> hypotheses;
  BleuScore bleu;
  RougeScores rouge;  // rougeLsum is not reported (one line per item)
  double exact_match = 0;
};

// The scores of given hypotheses (one per item).
GenerateReport score_generations(const std::vector<GenerateItem>& items, std::vector<std::string> hypotheses);

GenerateReport evaluate_generate(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                                 const std::vector<GenerateItem>& items, const GenerateTaskOptions& task,
                                 const LmEvalOptions& options = {}, const ProgressFn& progress = {});

struct ClassifyTaskOptions {
  std::string prompt_template = "{text}\nLabel:";
  FewShotOptions fewshot;  // its pool is ignored: examples come from the items
};

struct ClassifyReport {
  std::vector<std::string> predictions;
  ClassificationReport report;
};

// The items as choice items over `labels` with the template applied.
std::vector<ChoiceItem> classify_as_choice(const std::vector<ClassifyItem>& items,
                                           const std::vector<std::string>& labels,
                                           const std::string& prompt_template);

ClassifyReport evaluate_classify(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                                 const std::vector<ClassifyItem>& items, const ClassifyTaskOptions& task,
                                 const LmEvalOptions& options = {}, const ProgressFn& progress = {});

}  // namespace ld::eval
