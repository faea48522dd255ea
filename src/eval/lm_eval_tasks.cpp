#include "eval/lm_eval_tasks.hpp"

#include <algorithm>
#include <numeric>
#include <set>

#include "core/error.hpp"
#include "infer/generate.hpp"
#include "models/causal_lm.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::eval {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The model's BOS for an empty context, when config.json names one inside the vocabulary.
int64_t bos_of(const models::CausalLM& model) {
  const int64_t bos = model.hf_config().bos_token_id;
  return bos >= 0 && bos < model.config().vocab_size ? bos : -1;
}

size_t first_argmax(const std::vector<double>& values) {
  return size_t(std::max_element(values.begin(), values.end()) - values.begin());
}

std::string trim(const std::string& s) {
  const char* space = " \t\r\n";
  const size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// rouge-score's score_multi: per metric, the reference with the best F-measure.
RougeScores best_rouge(const std::vector<std::string>& references, const std::string& hypothesis) {
  RougeScores best;
  bool first = true;
  for (const std::string& ref : references) {
    const RougeScores s = rouge_all(ref, hypothesis);
    auto keep = [&](RougeScore& b, const RougeScore& c) {
      if (first || c.fmeasure > b.fmeasure) b = c;
    };
    keep(best.rouge1, s.rouge1);
    keep(best.rouge2, s.rouge2);
    keep(best.rougeL, s.rougeL);
    keep(best.rougeLsum, s.rougeLsum);
    first = false;
  }
  return best;
}

void add_to(RougeScore& sum, const RougeScore& s, double scale) {
  sum.precision += s.precision * scale;
  sum.recall += s.recall * scale;
  sum.fmeasure += s.fmeasure * scale;
}

}  // namespace

std::vector<size_t> sample_fewshot(size_t pool_size, std::optional<size_t> exclude, int64_t shots, uint64_t seed,
                                   size_t index) {
  LD_CHECK(shots >= 0, "--shots must be >= 0, got ", shots);
  std::vector<size_t> candidates;
  for (size_t i = 0; i < pool_size; ++i)
    if (i != exclude) candidates.push_back(i);
  LD_CHECK(size_t(shots) <= candidates.size(), "--shots ", shots, ": only ", candidates.size(),
           " few-shot examples are available", exclude ? " (the other items of the file)" : "");
  uint64_t state = seed ^ (0xD1B54A32D192ED03ull * (uint64_t(index) + 1));
  for (size_t i = 0; i < size_t(shots); ++i)  // a partial Fisher-Yates shuffle
    std::swap(candidates[i], candidates[i + size_t(splitmix64(state) % (candidates.size() - i))]);
  candidates.resize(size_t(shots));
  return candidates;
}

std::string choice_context(const std::vector<ChoiceItem>& items, size_t index, const FewShotOptions& fewshot) {
  const std::vector<ChoiceItem>& pool = fewshot.pool ? *fewshot.pool : items;
  const std::optional<size_t> exclude = fewshot.pool ? std::nullopt : std::optional<size_t>(index);
  std::string context;
  for (size_t e : sample_fewshot(pool.size(), exclude, fewshot.shots, fewshot.seed, index)) {
    const ChoiceItem& example = pool[e];
    context += example.query + " " + example.choices[size_t(example.gold)] + "\n\n";
  }
  return context + items[index].query;
}

ChoiceReport choice_report(const std::vector<ChoiceItem>& items, const std::vector<std::vector<double>>& logliks) {
  LD_ASSERT(items.size() == logliks.size(), "choice_report: one row of log-likelihoods per item");
  ChoiceReport r;
  r.total = int64_t(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& choices = items[i].choices;
    LD_ASSERT(logliks[i].size() == choices.size(), "choice_report: one log-likelihood per choice");
    std::vector<double> normalized(choices.size());
    for (size_t c = 0; c < choices.size(); ++c) normalized[c] = logliks[i][c] / double(choices[c].size());
    ChoiceItemResult item{logliks[i], int64_t(first_argmax(logliks[i])), int64_t(first_argmax(normalized))};
    r.correct += item.pred == items[i].gold;
    r.correct_norm += item.pred_norm == items[i].gold;
    r.items.push_back(std::move(item));
  }
  if (r.total > 0) {
    r.acc = double(r.correct) / double(r.total);
    r.acc_norm = double(r.correct_norm) / double(r.total);
  }
  return r;
}

ChoiceReport evaluate_choice(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                             const std::vector<ChoiceItem>& items, const FewShotOptions& fewshot,
                             const LmEvalOptions& options, const ProgressFn& progress) {
  const std::vector<int64_t> prefix = special_prefix(tokenizer);
  std::vector<LoglikRequest> requests;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string context = choice_context(items, i, fewshot);
    for (const std::string& choice : items[i].choices)
      requests.push_back(encode_request(tokenizer, prefix, context, " " + choice, bos_of(model)));
  }
  const std::vector<LoglikResult> results = loglikelihood(model, requests, options, progress);
  std::vector<std::vector<double>> logliks;
  size_t next = 0;
  for (const ChoiceItem& item : items) {
    logliks.emplace_back();
    for (size_t c = 0; c < item.choices.size(); ++c) logliks.back().push_back(results[next++].logprob);
  }
  return choice_report(items, logliks);
}

GenerateReport score_generations(const std::vector<GenerateItem>& items, std::vector<std::string> hypotheses) {
  LD_ASSERT(items.size() == hypotheses.size(), "score_generations: one hypothesis per item");
  GenerateReport r;
  size_t most_refs = 0;
  for (const GenerateItem& item : items) most_refs = std::max(most_refs, item.references.size());
  std::vector<std::vector<std::string>> streams(most_refs, std::vector<std::string>(items.size()));
  int64_t matches = 0;
  const double scale = items.empty() ? 0.0 : 1.0 / double(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& refs = items[i].references;
    for (size_t k = 0; k < refs.size(); ++k) streams[k][i] = refs[k];
    matches += std::find(refs.begin(), refs.end(), hypotheses[i]) != refs.end();
    const RougeScores best = best_rouge(refs, hypotheses[i]);
    add_to(r.rouge.rouge1, best.rouge1, scale);
    add_to(r.rouge.rouge2, best.rouge2, scale);
    add_to(r.rouge.rougeL, best.rougeL, scale);
    add_to(r.rouge.rougeLsum, best.rougeLsum, scale);
  }
  r.bleu = corpus_bleu(hypotheses, streams);
  r.exact_match = double(matches) * scale;
  r.hypotheses = std::move(hypotheses);
  return r;
}

GenerateReport evaluate_generate(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                                 const std::vector<GenerateItem>& items, const GenerateTaskOptions& task,
                                 const LmEvalOptions& options, const ProgressFn& progress) {
  LD_CHECK(options.batch_size >= 1, "--batch-size must be at least 1, got ", options.batch_size);
  LD_CHECK(task.max_new_tokens >= 1, "--max-new-tokens must be at least 1, got ", task.max_new_tokens);
  const std::vector<int64_t> prefix = special_prefix(tokenizer);
  infer::GenerateOptions gen;
  gen.max_new_tokens = task.max_new_tokens;
  gen.sampling.temperature = 0.0f;  // greedy
  for (int64_t id : model.hf_config().eos_token_ids) gen.eos_ids.push_back(int32_t(id));
  if (task.stop_at_newline) {
    gen.stop_strings = {"\n"};
    gen.tokenizer = &tokenizer;
  }
  std::vector<std::string> hypotheses;
  const size_t batch = size_t(options.batch_size);
  if (progress) progress(0, items.size());
  for (size_t start = 0; start < items.size(); start += batch) {
    std::vector<std::vector<int64_t>> prompts;
    for (size_t i = start; i < std::min(items.size(), start + batch); ++i) {
      prompts.push_back(prefix);
      for (int32_t id : tokenizer.encode(items[i].prompt, false)) prompts.back().push_back(id);
      if (prompts.back().empty() && bos_of(model) >= 0) prompts.back().push_back(bos_of(model));
      LD_CHECK(!prompts.back().empty(), "generate: item ", i + 1, " has an empty prompt and the model has no BOS");
    }
    for (std::vector<int32_t>& ids : infer::generate_batch(model, prompts, gen)) {
      if (!ids.empty() && std::count(gen.eos_ids.begin(), gen.eos_ids.end(), ids.back()) > 0) ids.pop_back();
      std::string text = tokenizer.decode(ids, /*skip_special=*/true);
      if (task.stop_at_newline) text = text.substr(0, text.find('\n'));
      hypotheses.push_back(trim(text));
    }
    if (progress) progress(hypotheses.size(), items.size());
  }
  return score_generations(items, std::move(hypotheses));
}

std::vector<ChoiceItem> classify_as_choice(const std::vector<ClassifyItem>& items,
                                           const std::vector<std::string>& labels,
                                           const std::string& prompt_template) {
  LD_CHECK(prompt_template.find("{text}") != std::string::npos, "--prompt-template '", prompt_template,
           "' has no {text} placeholder");
  std::vector<ChoiceItem> out;
  for (const ClassifyItem& item : items) {
    auto at = std::find(labels.begin(), labels.end(), item.label);
    LD_CHECK(at != labels.end(), "classify: label '", item.label, "' is not in the label set");
    out.push_back({replace_all(prompt_template, "{text}", item.text), labels, int64_t(at - labels.begin())});
  }
  return out;
}

ClassifyReport evaluate_classify(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                                 const std::vector<ClassifyItem>& items, const ClassifyTaskOptions& task,
                                 const LmEvalOptions& options, const ProgressFn& progress) {
  std::set<std::string> label_set;
  for (const ClassifyItem& item : items) {
    LD_CHECK(!item.label.empty(), "classify: an empty label cannot be scored as a continuation");
    label_set.insert(item.label);
  }
  const std::vector<std::string> labels(label_set.begin(), label_set.end());
  const std::vector<ChoiceItem> choice_items = classify_as_choice(items, labels, task.prompt_template);
  FewShotOptions fewshot = task.fewshot;
  fewshot.pool = nullptr;
  const ChoiceReport choice = evaluate_choice(model, tokenizer, choice_items, fewshot, options, progress);
  ClassifyReport r;
  std::vector<std::string> references;
  for (size_t i = 0; i < items.size(); ++i) {
    r.predictions.push_back(labels[size_t(choice.items[i].pred)]);
    references.push_back(items[i].label);
  }
  r.report = classification_report(confusion_matrix(references, r.predictions, labels));
  return r;
}

}  // namespace ld::eval
