// `liandan metrics bleu|chrf|rouge|f1|accuracy --ref FILE --hyp FILE [--json]`: score hypotheses
// against references, one item per line (one label per line for f1/accuracy). Prints a readable
// table, or one JSON object with --json. Input problems (files of different lengths, an empty file,
// a label outside --labels) are one error naming the file and line.
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "eval/bleu.hpp"
#include "eval/chrf.hpp"
#include "eval/classification.hpp"
#include "eval/rouge.hpp"

namespace ld::cli {

namespace {

using nlohmann::json;

// The lines of a file without their "\n" (or "\r\n"); a last line without a newline counts.
std::vector<std::string> read_items(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path, ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  LD_CHECK(!text.empty(), path, ": the file is empty (expected one item per line)");
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

void check_same_length(const std::string& ref_path, const std::vector<std::string>& refs, const std::string& hyp_path,
                       const std::vector<std::string>& hyps) {
  if (refs.size() == hyps.size()) return;
  const bool hyp_short = hyps.size() < refs.size();
  const std::string& longer = hyp_short ? ref_path : hyp_path;
  const std::string& shorter = hyp_short ? hyp_path : ref_path;
  const size_t first_unmatched = std::min(refs.size(), hyps.size()) + 1;
  LD_FAIL(longer, ":", first_unmatched, ": no matching line in ", shorter, " (", hyp_path, " has ", hyps.size(),
          " lines, ", ref_path, " has ", refs.size(), ")");
}

struct TextArgs {
  std::vector<std::string> refs;
  std::string hyp;
  bool json = false;
};

// The hypotheses and one stream per reference file, all of the same length.
std::pair<std::vector<std::string>, std::vector<std::vector<std::string>>> read_streams(const TextArgs& a) {
  std::vector<std::string> hyps = read_items(a.hyp);
  std::vector<std::vector<std::string>> streams;
  for (const std::string& path : a.refs) {
    streams.push_back(read_items(path));
    check_same_length(path, streams.back(), a.hyp, hyps);
  }
  // A segment needs at least one non-empty reference (sacreBLEU refuses it too).
  for (size_t i = 0; i < hyps.size(); ++i) {
    bool any = false;
    for (const auto& s : streams) any = any || !s[i].empty();
    LD_CHECK(any, a.refs.front(), ":", i + 1, ": empty reference line (every segment needs a reference)");
  }
  return {std::move(hyps), std::move(streams)};
}

void print_json(const json& j) { std::printf("%s\n", j.dump(-1, ' ', false, json::error_handler_t::replace).c_str()); }

void run_bleu(const TextArgs& a, const eval::BleuOptions& options) {
  auto [hyps, streams] = read_streams(a);
  eval::BleuScore s = eval::corpus_bleu(hyps, streams, options);
  const double ratio = s.stats.ref_len > 0 ? double(s.stats.sys_len) / double(s.stats.ref_len) : 0.0;
  if (a.json) {
    print_json({{"metric", "bleu"},
                {"score", s.score},
                {"precisions", s.precisions},
                {"counts", s.stats.correct},
                {"totals", s.stats.total},
                {"bp", s.bp},
                {"ratio", ratio},
                {"sys_len", s.stats.sys_len},
                {"ref_len", s.stats.ref_len},
                {"signature", s.signature}});
    return;
  }
  std::string precisions;
  for (double p : s.precisions) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.1f", precisions.empty() ? "" : "/", p);
    precisions += buf;
  }
  std::printf("BLEU        %.2f\n", s.score);
  std::printf("precisions  %s\n", precisions.c_str());
  std::printf("BP          %.3f (ratio %.3f, hyp_len %lld, ref_len %lld)\n", s.bp, ratio, (long long)s.stats.sys_len,
              (long long)s.stats.ref_len);
  std::printf("signature   %s (sacreBLEU %s compatible)\n", s.signature.c_str(), eval::kSacreBleuVersion);
}

void run_chrf(const TextArgs& a, const eval::ChrfOptions& options) {
  auto [hyps, streams] = read_streams(a);
  eval::ChrfScore s = eval::corpus_chrf(hyps, streams, options);
  if (a.json) {
    print_json({{"metric", "chrf"}, {"score", s.score}, {"beta", options.beta}, {"signature", s.signature}});
    return;
  }
  std::printf("chrF%g%s  %.2f\n", options.beta, std::string(size_t(options.word_order), '+').c_str(), s.score);
  std::printf("signature  %s (sacreBLEU %s compatible)\n", s.signature.c_str(), eval::kSacreBleuVersion);
}

struct RougeArgs {
  std::string ref, hyp, sentence_separator;
  bool json = false, stemmer = false;
};

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out += text.substr(pos, hit - pos) + to;
  return out + text.substr(pos);
}

void run_rouge(const RougeArgs& a) {
  std::vector<std::string> refs = read_items(a.ref), hyps = read_items(a.hyp);
  check_same_length(a.ref, refs, a.hyp, hyps);
  // One item per line, so ROUGE-Lsum's sentence breaks come from a separator the user names.
  for (auto* items : {&refs, &hyps})
    for (std::string& item : *items) item = replace_all(item, a.sentence_separator, "\n");
  eval::RougeScores s = eval::rouge_corpus_mean(refs, hyps, a.stemmer);
  const std::pair<const char*, const eval::RougeScore*> rows[] = {
      {"rouge1", &s.rouge1}, {"rouge2", &s.rouge2}, {"rougeL", &s.rougeL}, {"rougeLsum", &s.rougeLsum}};
  if (a.json) {
    json j = {{"metric", "rouge"}, {"stemmer", a.stemmer}, {"pairs", refs.size()}};
    for (const auto& [name, score] : rows)
      j[name] = {{"precision", score->precision}, {"recall", score->recall}, {"fmeasure", score->fmeasure}};
    print_json(j);
    return;
  }
  std::printf("%-10s %9s %9s %9s\n", "", "precision", "recall", "fmeasure");
  for (const auto& [name, score] : rows)
    std::printf("%-10s %9.4f %9.4f %9.4f\n", name, score->precision, score->recall, score->fmeasure);
  std::printf("(mean over %zu pairs; rouge-score tokenizer%s)\n", refs.size(), a.stemmer ? ", Porter stemmer" : "");
}

struct LabelArgs {
  std::string ref, hyp, labels;
  bool json = false;
};

// Every label is non-empty and, when a label set is given, in it; the error names file and line.
void check_labels(const std::string& path, const std::vector<std::string>& items, const std::set<std::string>* allowed,
                  const std::string& labels_path) {
  for (size_t i = 0; i < items.size(); ++i) {
    LD_CHECK(!items[i].empty(), path, ":", i + 1, ": empty label (expected one label per line)");
    LD_CHECK(!allowed || allowed->count(items[i]), path, ":", i + 1, ": label '", items[i],
             "' is not in the label set of ", labels_path);
  }
}

eval::ConfusionMatrix read_confusion(const LabelArgs& a) {
  std::vector<std::string> refs = read_items(a.ref), hyps = read_items(a.hyp);
  check_same_length(a.ref, refs, a.hyp, hyps);
  std::vector<std::string> labels;
  std::set<std::string> allowed;
  if (!a.labels.empty()) {
    labels = read_items(a.labels);
    for (size_t i = 0; i < labels.size(); ++i) {
      LD_CHECK(!labels[i].empty(), a.labels, ":", i + 1, ": empty label");
      LD_CHECK(allowed.insert(labels[i]).second, a.labels, ":", i + 1, ": label '", labels[i], "' is listed twice");
    }
  }
  check_labels(a.ref, refs, a.labels.empty() ? nullptr : &allowed, a.labels);
  check_labels(a.hyp, hyps, a.labels.empty() ? nullptr : &allowed, a.labels);
  return eval::confusion_matrix(refs, hyps, labels);
}

json prf_json(const eval::PrecisionRecallF1& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"f1", s.f1}};
}

void print_prf_row(const std::string& name, const eval::PrecisionRecallF1& s, long long support, int width) {
  std::printf("%-*s %9.4f %9.4f %9.4f %9lld\n", width, name.c_str(), s.precision, s.recall, s.f1, support);
}

void print_matrix(const eval::ConfusionMatrix& m) {
  std::printf("\nconfusion matrix (rows: reference, columns: hypothesis)\n");
  size_t width = 4;
  for (const auto& l : m.labels) width = std::max(width, l.size());
  std::printf("%-*s", int(width), "");
  for (const auto& l : m.labels) std::printf(" %*s", int(width), l.c_str());
  std::printf("\n");
  for (size_t r = 0; r < m.labels.size(); ++r) {
    std::printf("%-*s", int(width), m.labels[r].c_str());
    for (int64_t c : m.counts[r]) std::printf(" %*lld", int(width), (long long)c);
    std::printf("\n");
  }
}

void run_f1(const LabelArgs& a) {
  eval::ClassificationReport r = eval::classification_report(read_confusion(a));
  if (a.json) {
    json per_class = json::array();
    for (const auto& c : r.per_class) {
      json row = prf_json(c.scores);
      row["label"] = c.label;
      row["support"] = c.support;
      per_class.push_back(row);
    }
    print_json({{"metric", "f1"},
                {"accuracy", r.accuracy},
                {"micro", prf_json(r.micro)},
                {"macro", prf_json(r.macro)},
                {"weighted", prf_json(r.weighted)},
                {"per_class", per_class},
                {"labels", r.matrix.labels},
                {"confusion_matrix", r.matrix.counts},
                {"zero_division", 0}});
    return;
  }
  int width = 12;
  for (const auto& c : r.per_class) width = std::max(width, int(c.label.size()));
  std::printf("%-*s %9s %9s %9s %9s\n", width, "label", "precision", "recall", "f1", "support");
  for (const auto& c : r.per_class) print_prf_row(c.label, c.scores, c.support, width);
  std::printf("\n");
  print_prf_row("micro avg", r.micro, r.total, width);
  print_prf_row("macro avg", r.macro, r.total, width);
  print_prf_row("weighted avg", r.weighted, r.total, width);
  std::printf("%-*s %9.4f (%lld of %lld)\n", width, "accuracy", r.accuracy, (long long)r.correct, (long long)r.total);
  print_matrix(r.matrix);
}

void run_accuracy(const LabelArgs& a) {
  eval::ClassificationReport r = eval::classification_report(read_confusion(a));
  if (a.json) {
    print_json({{"metric", "accuracy"}, {"accuracy", r.accuracy}, {"correct", r.correct}, {"total", r.total}});
    return;
  }
  std::printf("accuracy  %.4f (%lld of %lld)\n", r.accuracy, (long long)r.correct, (long long)r.total);
}

void add_text_io(CLI::App* cmd, TextArgs& a) {
  cmd->add_option("--ref", a.refs, "reference file, one segment per line (repeat for more references)")->required();
  cmd->add_option("--hyp", a.hyp, "hypothesis file, one segment per line")->required();
  cmd->add_flag("--json", a.json, "print one JSON object");
}

void add_bleu(CLI::App& parent, std::function<void()>& run) {
  auto* cmd = parent.add_subcommand("bleu", "Corpus BLEU, sacreBLEU-compatible (13a, exp smoothing)");
  auto a = std::make_shared<TextArgs>();
  auto o = std::make_shared<eval::BleuOptions>();
  auto tokenize = std::make_shared<std::string>("13a");
  auto smooth = std::make_shared<std::string>("exp");
  auto smooth_value = std::make_shared<double>(0.0);
  add_text_io(cmd, *a);
  cmd->add_option("--tokenize", *tokenize, "13a (sacreBLEU's default) or none (text already tokenised)")
      ->check(CLI::IsMember({"13a", "none"}))
      ->capture_default_str();
  cmd->add_option("--smooth", *smooth, "smoothing: exp, none, floor or add-k")
      ->check(CLI::IsMember({"exp", "none", "floor", "add-k"}))
      ->capture_default_str();
  auto* value = cmd->add_option("--smooth-value", *smooth_value, "value for floor (default 0.1) or add-k (default 1)");
  cmd->add_flag("--lowercase", o->lowercase, "case-insensitive BLEU");
  run = [=] {
    o->tokenize = *tokenize == "none" ? eval::BleuTokenize::kNone : eval::BleuTokenize::k13a;
    const std::map<std::string, eval::BleuSmooth> methods = {{"exp", eval::BleuSmooth::kExp},
                                                             {"none", eval::BleuSmooth::kNone},
                                                             {"floor", eval::BleuSmooth::kFloor},
                                                             {"add-k", eval::BleuSmooth::kAddK}};
    o->smooth = methods.at(*smooth);
    if (value->count() > 0) o->smooth_value = *smooth_value;
    run_bleu(*a, *o);
  };
}

void add_chrf(CLI::App& parent, std::function<void()>& run) {
  auto* cmd = parent.add_subcommand("chrf", "chrF, sacreBLEU-compatible (char order 6, word order 0, beta 2)");
  auto a = std::make_shared<TextArgs>();
  auto o = std::make_shared<eval::ChrfOptions>();
  add_text_io(cmd, *a);
  cmd->add_option("--char-order", o->char_order, "character n-gram order")->capture_default_str();
  cmd->add_option("--word-order", o->word_order, "word n-gram order (2 for chrF++)")->capture_default_str();
  cmd->add_option("--beta", o->beta, "weight of recall against precision")->capture_default_str();
  cmd->add_flag("--lowercase", o->lowercase, "case-insensitive chrF");
  cmd->add_flag("--whitespace", o->whitespace, "keep whitespace in character n-grams");
  cmd->add_flag("--eps-smoothing", o->eps_smoothing, "chrF++.py-style epsilon smoothing instead of effective order");
  run = [=] { run_chrf(*a, *o); };
}

void add_rouge(CLI::App& parent, std::function<void()>& run) {
  auto* cmd = parent.add_subcommand("rouge", "ROUGE-1/2/L/Lsum F-measures as rouge-score computes them");
  auto a = std::make_shared<RougeArgs>();
  cmd->add_option("--ref", a->ref, "reference file, one text per line")->required();
  cmd->add_option("--hyp", a->hyp, "hypothesis file, one text per line")->required();
  cmd->add_flag("--json", a->json, "print one JSON object");
  cmd->add_flag("--stemmer", a->stemmer, "Porter-stem tokens longer than 3 characters (rouge-score's use_stemmer)");
  cmd->add_option("--sentence-separator", a->sentence_separator,
                  "string that separates sentences within a line, for ROUGE-Lsum (e.g. '<n>')");
  run = [a] { run_rouge(*a); };
}

template <typename Run>
void add_label_metric(CLI::App& parent, std::function<void()>& run, const char* name, const char* description,
                      Run metric) {
  auto* cmd = parent.add_subcommand(name, description);
  auto a = std::make_shared<LabelArgs>();
  cmd->add_option("--ref", a->ref, "reference labels, one per line")->required();
  cmd->add_option("--hyp", a->hyp, "predicted labels, one per line")->required();
  cmd->add_option("--labels", a->labels, "the label set, one per line (its order is the report's order)");
  cmd->add_flag("--json", a->json, "print one JSON object");
  run = [a, metric] { metric(*a); };
}

}  // namespace

void add_metrics_command(CLI::App& app, std::function<void()>& run) {
  const AddCommand add_f1 = [](CLI::App& p, std::function<void()>& r) {
    add_label_metric(p, r, "f1", "Precision, recall and F1 (per class, micro, macro, weighted) and the confusion matrix",
                     run_f1);
  };
  const AddCommand add_accuracy = [](CLI::App& p, std::function<void()>& r) {
    add_label_metric(p, r, "accuracy", "Fraction of predicted labels equal to the reference", run_accuracy);
  };
  add_command_group(app, run, "metrics", "Score hypotheses against references: bleu, chrf, rouge, f1, accuracy",
                    {add_bleu, add_chrf, add_rouge, add_f1, add_accuracy});
}

}  // namespace ld::cli
