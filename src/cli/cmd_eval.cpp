// `liandan eval --model DIR --task ppl|choice|generate|classify --data FILE [...]`: evaluate a causal
// LM folder (config.json, safetensors, tokenizer) on a data set (formats: eval/eval_data.hpp; how each
// task scores: eval/lm_eval.hpp and eval/lm_eval_tasks.hpp). Prints a table; --output also writes the
// report (settings, metrics, per-item results) as JSON, atomically. Progress goes to stderr on a
// terminal. --adapter DIR evaluates the model with a saved adapter (LoRA, prompt tuning, Houlsby;
// peft/peft_io.hpp) attached. --device cuda loads the weights on the host, then moves the model there
// (nn::Module::to) and evaluates on it; the report is the same.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "eval/eval_data.hpp"
#include "eval/lm_eval.hpp"
#include "eval/lm_eval_tasks.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "peft/peft_io.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/run_config.hpp"

namespace ld::cli {

namespace {

using nlohmann::json;

struct EvalArgs {
  std::string model, adapter, task, data, fewshot_data, output;
  std::string prompt_template = "{text}\nLabel:";
  std::string device = "cpu";
  int64_t shots = 0;
  uint64_t seed = 1234;
  int64_t max_new_tokens = 64;
  int64_t batch_size = 8;
  int64_t max_length = 0;
  bool stop_at_newline = false;
};

// What every task needs: the model and its tokenizer, loaded after the arguments and data are checked.
struct Loaded {
  std::unique_ptr<models::CausalLM> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;
};

Loaded load(const EvalArgs& a) {
  const io::HfModelConfig config = io::read_hf_config(a.model);
  if (!config.is_causal_lm()) {
    // TODO(eval): --task classify on BertForSequenceClassification folders (models/bert.hpp has the
    // model; what is missing is a WordPiece tokenizer to encode the text).
    const std::string kind = config.architecture.empty() ? config.model_type : config.architecture;
    LD_CHECK(!(a.task == "classify" && kind == "BertForSequenceClassification"), a.model,
             ": classify with a BertForSequenceClassification folder is not supported yet (liandan has no WordPiece "
             "tokenizer for its text); causal LMs are classified by scoring the labels as continuations");
    LD_FAIL(a.model, ": eval runs causal LMs (GPT-2, LLaMA, Mistral, Qwen2, Mixtral); this folder is a ", kind);
  }
  Loaded l;
  try {
    l.tokenizer = tok::load_tokenizer(a.model);
  } catch (const Error& e) {
    LD_FAIL(a.model, ": eval needs a tokenizer in the model folder (", e.what(), ")");
  }
  l.model = models::load_causal_lm(a.model);
  if (!a.adapter.empty()) peft::load_adapter(*l.model, a.adapter);
  l.model->to(train::usable_device(a.device, "--device"));  // checked already in run_eval
  return l;
}

// Progress in `unit`s once the total is known (the first callback).
struct ProgressLine {
  std::string unit;
  std::optional<Progress> line;
  eval::ProgressFn fn() {
    return [this](size_t done, size_t total) {
      if (!line) line.emplace(unit, total);
      line->tick(done);
    };
  }
  ~ProgressLine() {
    if (line) line->done();
  }
};

eval::LmEvalOptions lm_options(const EvalArgs& a) { return {.batch_size = a.batch_size, .max_length = a.max_length}; }

json rouge_json(const eval::RougeScore& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"fmeasure", s.fmeasure}};
}

void print_row(const char* name, const std::string& value) { std::printf("%-14s %s\n", name, value.c_str()); }
void print_row(const char* name, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4f", value);
  print_row(name, buf);
}

json run_ppl(const EvalArgs& a) {
  const std::vector<std::string> docs = eval::read_documents(a.data);
  Loaded l = load(a);
  std::vector<std::vector<int64_t>> ids;
  for (const std::string& doc : docs) {
    const std::vector<int32_t> t = l.tokenizer->encode(doc, /*add_special=*/true);
    ids.emplace_back(t.begin(), t.end());
  }
  eval::PerplexityResult r;
  {
    ProgressLine progress{"windows", {}};
    r = eval::document_perplexity(*l.model, ids, lm_options(a), progress.fn());
  }
  print_row("documents", std::to_string(r.documents));
  print_row("window", std::to_string(r.window) + " tokens (stride = window, no overlap)");
  print_row("windows", std::to_string(r.windows));
  print_row("tokens", std::to_string(r.tokens) + " predicted");
  print_row("nll", r.nll / double(r.tokens));
  print_row("ppl", r.ppl);
  return {{"documents", r.documents},
          {"window", r.window},
          {"windows", r.windows},
          {"metrics", {{"tokens", r.tokens}, {"nll", r.nll}, {"mean_nll", r.nll / double(r.tokens)}, {"ppl", r.ppl}}}};
}

json run_choice(const EvalArgs& a) {
  const std::vector<eval::ChoiceItem> items = eval::read_choice_items(a.data);
  std::vector<eval::ChoiceItem> pool;
  if (!a.fewshot_data.empty()) pool = eval::read_choice_items(a.fewshot_data);
  const eval::FewShotOptions fewshot{
      .shots = a.shots, .seed = a.seed, .pool = a.fewshot_data.empty() ? nullptr : &pool};
  eval::choice_context(items, 0, fewshot);  // checks --shots against the pool before loading
  Loaded l = load(a);
  eval::ChoiceReport r;
  {
    ProgressLine progress{"requests", {}};
    r = eval::evaluate_choice(*l.model, *l.tokenizer, items, fewshot, lm_options(a), progress.fn());
  }
  print_row("items", std::to_string(r.total));
  print_row("acc", r.acc);
  print_row("acc_norm", r.acc_norm);
  json samples = json::array();
  for (size_t i = 0; i < items.size(); ++i)
    samples.push_back({{"gold", items[i].gold},
                       {"pred", r.items[i].pred},
                       {"pred_norm", r.items[i].pred_norm},
                       {"logliks", r.items[i].logliks}});
  return {{"items", r.total},
          {"metrics",
           {{"acc", r.acc}, {"acc_norm", r.acc_norm}, {"correct", r.correct}, {"correct_norm", r.correct_norm}}},
          {"samples", samples}};
}

json run_generate(const EvalArgs& a) {
  const std::vector<eval::GenerateItem> items = eval::read_generate_items(a.data);
  Loaded l = load(a);
  eval::GenerateReport r;
  {
    ProgressLine progress{"items", {}};
    r = eval::evaluate_generate(*l.model, *l.tokenizer, items, {a.max_new_tokens, a.stop_at_newline}, lm_options(a),
                                progress.fn());
  }
  print_row("items", std::to_string(items.size()));
  print_row("bleu", r.bleu.score);
  print_row("rouge1", r.rouge.rouge1.fmeasure);
  print_row("rouge2", r.rouge.rouge2.fmeasure);
  print_row("rougeL", r.rouge.rougeL.fmeasure);
  print_row("exact_match", r.exact_match);
  print_row("bleu signature", r.bleu.signature);
  json samples = json::array();
  for (size_t i = 0; i < items.size(); ++i)
    samples.push_back(
        {{"prompt", items[i].prompt}, {"hypothesis", r.hypotheses[i]}, {"references", items[i].references}});
  return {{"items", items.size()},
          {"metrics",
           {{"bleu", r.bleu.score},
            {"bleu_precisions", r.bleu.precisions},
            {"bleu_bp", r.bleu.bp},
            {"bleu_signature", r.bleu.signature},
            {"rouge1", rouge_json(r.rouge.rouge1)},
            {"rouge2", rouge_json(r.rouge.rouge2)},
            {"rougeL", rouge_json(r.rouge.rougeL)},
            {"exact_match", r.exact_match}}},
          {"samples", samples}};
}

json prf_json(const eval::PrecisionRecallF1& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}};
}

json run_classify(const EvalArgs& a) {
  const std::vector<eval::ClassifyItem> items = eval::read_classify_items(a.data);
  Loaded l = load(a);
  eval::ClassifyReport r;
  {
    ProgressLine progress{"requests", {}};
    eval::ClassifyTaskOptions task{a.prompt_template, {.shots = a.shots, .seed = a.seed, .pool = nullptr}};
    r = eval::evaluate_classify(*l.model, *l.tokenizer, items, task, lm_options(a), progress.fn());
  }
  const eval::ClassificationReport& c = r.report;
  print_row("items", std::to_string(c.total));
  print_row("accuracy", c.accuracy);
  print_row("macro_f1", c.macro.f1);
  print_row("micro_f1", c.micro.f1);
  print_row("weighted_f1", c.weighted.f1);
  std::printf("confusion (rows: true, columns: predicted)\n  %-12s", "");
  for (const std::string& label : c.matrix.labels) std::printf(" %6.6s", label.c_str());
  std::printf("\n");
  for (size_t i = 0; i < c.matrix.labels.size(); ++i) {
    std::printf("  %-12s", c.matrix.labels[i].c_str());
    for (int64_t n : c.matrix.counts[i]) std::printf(" %6lld", (long long)n);
    std::printf("\n");
  }
  json per_class = json::array();
  for (const eval::ClassReport& k : c.per_class)
    per_class.push_back(
        {{"label", k.label}, {"support", k.support}, {"predicted", k.predicted}, {"scores", prf_json(k.scores)}});
  json samples = json::array();
  for (size_t i = 0; i < items.size(); ++i) samples.push_back({{"label", items[i].label}, {"pred", r.predictions[i]}});
  return {{"items", c.total},
          {"labels", c.matrix.labels},
          {"metrics",
           {{"accuracy", c.accuracy},
            {"micro", prf_json(c.micro)},
            {"macro", prf_json(c.macro)},
            {"weighted", prf_json(c.weighted)},
            {"per_class", per_class},
            {"confusion_matrix", c.matrix.counts}}},
          {"samples", samples}};
}

void run_eval(const EvalArgs& a) {
  LD_CHECK(a.task == "ppl" || a.task == "choice" || a.task == "generate" || a.task == "classify", "--task '", a.task,
           "' is unknown (expected ppl, choice, generate or classify)");
  LD_CHECK(a.fewshot_data.empty() || a.task == "choice", "--fewshot-data is for --task choice");
  train::usable_device(a.device, "--device");  // before reading the data and loading the weights
  std::printf("%-14s %s\n", "task", a.task.c_str());
  json report = a.task == "ppl"        ? run_ppl(a)
                : a.task == "choice"   ? run_choice(a)
                : a.task == "generate" ? run_generate(a)
                                       : run_classify(a);
  if (a.output.empty()) return;
  json settings = {{"shots", a.shots},         {"seed", a.seed},
                   {"batch_size", a.batch_size}, {"max_length", a.max_length},
                   {"max_new_tokens", a.max_new_tokens}, {"stop_at_newline", a.stop_at_newline}};
  if (a.task == "classify") settings["prompt_template"] = a.prompt_template;
  if (!a.fewshot_data.empty()) settings["fewshot_data"] = a.fewshot_data;
  report["task"] = a.task;
  report["model"] = a.model;
  report["data"] = a.data;
  report["settings"] = settings;
  write_file_atomically(a.output, report.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

}  // namespace

void add_eval_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd =
      app.add_subcommand("eval", "Evaluate a causal LM: perplexity, multiple choice, generation, classification");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--model", a->model, "model folder (config.json, model.safetensors, tokenizer)")->required();
  cmd->add_option("--adapter", a->adapter, "adapter folder to attach (LoRA, prompt tuning, Houlsby; PEFT layout)");
  cmd->add_option("--task", a->task, "ppl | choice | generate | classify")->required();
  cmd->add_option("--data", a->data, "data: .txt or JSONL {text} (ppl); JSONL {query, choices, gold} (choice); "
                                     "{prompt, reference(s)} (generate); {text, label} (classify)")
      ->required();
  cmd->add_option("--fewshot-data", a->fewshot_data, "choice: draw few-shot examples from this file instead");
  cmd->add_option("--shots", a->shots, "few-shot examples per item (choice, classify; default 0)");
  cmd->add_option("--seed", a->seed, "seed for drawing few-shot examples (default 1234)");
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "generate: tokens to generate at most (default 64)");
  cmd->add_flag("--stop-at-newline", a->stop_at_newline, "generate: stop at the first newline");
  cmd->add_option("--batch-size", a->batch_size, "sequences per forward pass (default 8)");
  cmd->add_option("--max-length", a->max_length, "tokens the model reads at once; 0 = its context (default)");
  cmd->add_option("--prompt-template", a->prompt_template,
                  "classify: context with {text} (default \"{text}\\nLabel:\")");
  cmd->add_option("--output", a->output, "write the JSON report here");
  cmd->add_option("--device", a->device, "where the model runs: cpu, cuda (device 0) or cuda:N (default cpu)");
  run = [a] { run_eval(*a); };
}

}  // namespace ld::cli
