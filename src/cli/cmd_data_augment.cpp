// `liandan data augment --input FILE --out FILE --method eda|backtranslate`: augmented copies of each
// document, written as JSONL {"text", "source_index", "method"} (source_index counts input documents
// from 0). Input: JSONL (*.jsonl, the --text-field string) or text, one document per line.
//   eda            Wei & Zou's EDA with WordNet synonyms (--wordnet DIR, default /usr/share/wordnet)
//                  or, for other languages, a TSV synonym file (--synonyms; words pre-segmented by
//                  spaces); --alpha-sr/--alpha-ri/--alpha-rs/--p-rd, --n-aug per document.
//   backtranslate  text -> --forward-model -> --backward-model -> paraphrase.
// Same --seed, same output, whatever the thread count.
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "data/augment_backtranslate.hpp"
#include "data/augment_eda.hpp"
#include "data/augment_synonyms.hpp"
#include "data/readers.hpp"

namespace ld::cli {

namespace {

struct AugmentArgs {
  std::string input, out, method;
  std::string text_field = "text";
  std::string wordnet = "/usr/share/wordnet";
  std::string synonyms;
  data::EdaOptions eda;
  bool keep_original = false;
  uint64_t seed = 0;
  int threads = 0;
  std::string forward_model, backward_model;
  data::BacktranslateOptions bt;
};

std::vector<std::string> read_input(const AugmentArgs& a) {
  LD_CHECK(std::filesystem::is_regular_file(a.input), "--input ", a.input, ": no such file");
  data::ReaderOptions options;
  options.text_field = a.text_field;
  options.doc_per_line = true;
  std::vector<std::string> docs;
  data::read_documents(a.input, options, [&](data::Document&& d) { docs.push_back(std::move(d.text)); });
  return docs;
}

std::vector<data::Augmented> run_eda(const AugmentArgs& a, const std::vector<std::string>& docs, Progress& progress) {
  data::EdaOptions options = a.eda;
  std::unique_ptr<data::SynonymSource> source;
  if (!a.synonyms.empty()) {
    source = std::make_unique<data::SynonymTable>(data::SynonymTable::read_tsv(a.synonyms));
    options.english_cleanup = false;  // other languages: words as segmented, no a-z filter
  } else {
    source = std::make_unique<data::WordNet>(a.wordnet);
  }
  return data::eda_augment(docs, *source, options, a.seed, a.threads, [&](size_t done) { progress.tick(done); });
}

std::vector<data::Augmented> run_backtranslate(const AugmentArgs& a, const std::vector<std::string>& docs,
                                               Progress& progress) {
  LD_CHECK(!a.forward_model.empty() && !a.backward_model.empty(),
           "data augment --method backtranslate: give --forward-model DIR and --backward-model DIR");
  data::validate(a.bt);  // before loading weights
  const data::Translator forward(a.forward_model);
  const data::Translator backward(a.backward_model);
  return data::backtranslate_augment(docs, forward, backward, a.bt, a.seed, [&](size_t done) { progress.tick(done); });
}

void run_augment(const AugmentArgs& a) {
  LD_CHECK(a.method == "eda" || a.method == "backtranslate", "data augment: unknown --method '", a.method,
           "': use eda or backtranslate");
  if (a.method == "eda") data::validate(a.eda);
  const std::vector<std::string> docs = read_input(a);
  Progress progress("documents", docs.size());
  std::vector<data::Augmented> records =
      a.method == "eda" ? run_eda(a, docs, progress) : run_backtranslate(a, docs, progress);
  progress.done();
  std::string out;
  auto write = [&](const std::string& text, size_t index, const std::string& method) {
    const nlohmann::json line = {{"text", text}, {"source_index", index}, {"method", method}};
    out += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  };
  size_t next = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    if (a.keep_original) write(docs[d], d, "original");
    for (; next < records.size() && records[next].source_index == d; ++next)
      write(records[next].text, d, records[next].method);
  }
  write_file_atomically(a.out, out);
}

}  // namespace

void add_data_augment(CLI::App& data_cmd, std::function<void()>& run) {
  auto* cmd = data_cmd.add_subcommand("augment", "Augment documents: EDA (synonyms, insertion, swap, deletion) or back-translation");
  auto a = std::make_shared<AugmentArgs>();
  cmd->add_option("--input", a->input, "documents: .jsonl (see --text-field) or text, one document per line")->required();
  cmd->add_option("--out", a->out, "output JSONL: {\"text\", \"source_index\", \"method\"} per line")->required();
  cmd->add_option("--method", a->method, "eda or backtranslate")->required();
  cmd->add_option("--text-field", a->text_field, "JSONL field holding the text (default text)");
  cmd->add_option("--seed", a->seed, "random seed (default 0)");
  cmd->add_flag("--keep-original", a->keep_original, "also write each input document (method \"original\")");
  cmd->add_option("--threads", a->threads, "EDA threads, 0 = all (does not change the output)");
  cmd->add_option("--wordnet", a->wordnet, "eda: WordNet database folder (default /usr/share/wordnet, Debian's wordnet-base)");
  cmd->add_option("--synonyms", a->synonyms,
                  "eda: TSV synonym file word<TAB>syn1<TAB>syn2... instead of WordNet (documents pre-segmented by spaces)");
  cmd->add_option("--alpha-sr", a->eda.alpha_sr, "eda: share of words replaced by synonyms (default 0.1)");
  cmd->add_option("--alpha-ri", a->eda.alpha_ri, "eda: share of words inserted (default 0.1)");
  cmd->add_option("--alpha-rs", a->eda.alpha_rs, "eda: share of words swapped (default 0.1)");
  cmd->add_option("--p-rd", a->eda.p_rd, "eda: probability of deleting each word (default 0.1)");
  auto* n_aug = cmd->add_option("--n-aug", a->eda.n_aug, "eda: augmented documents per document (default 4); backtranslate with --temperature > 0: samples per document (default 1)");
  cmd->add_option("--forward-model", a->forward_model, "backtranslate: model folder text -> intermediate");
  cmd->add_option("--backward-model", a->backward_model, "backtranslate: model folder intermediate -> paraphrase");
  cmd->add_option("--forward-template", a->bt.forward_template, "backtranslate: forward prompt, {text} = the document (default \"{text}\")");
  cmd->add_option("--backward-template", a->bt.backward_template, "backtranslate: backward prompt, {text} = the intermediate (default \"{text}\")");
  cmd->add_option("--separator", a->bt.separator, "backtranslate: appended to each prompt; generation stops there (default newline)");
  cmd->add_option("--max-new-tokens", a->bt.max_new_tokens, "backtranslate: tokens per generation at most (default 64)");
  cmd->add_option("--temperature", a->bt.sampling.temperature, "backtranslate: 0 = greedy, one paraphrase per document (default 0)");
  cmd->add_option("--top-k", a->bt.sampling.top_k, "backtranslate: top-k when sampling, 0 = off (default 0)");
  cmd->add_option("--top-p", a->bt.sampling.top_p, "backtranslate: nucleus mass when sampling (default 1)");
  cmd->add_option("--batch-size", a->bt.batch_size, "backtranslate: documents per batch when greedy (default 8)");
  run = [a, n_aug] {
    a->bt.n_aug = n_aug->count() > 0 ? a->eda.n_aug : 1;
    run_augment(*a);
  };
}

}  // namespace ld::cli
