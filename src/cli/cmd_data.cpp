// `liandan data prepare|augment`. prepare: corpora -> cleaned, deduplicated token shards with an
// index and a report (src/data/prepare.hpp); the report table goes to stdout, progress to stderr on a
// terminal. `augment` is registered by add_data_augment (cmd_data_augment.cpp).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "data/prepare.hpp"

namespace ld::cli {

namespace {

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string tokenizer, out, format = "auto", dedup = "exact", normalize = "nfc";
  int32_t eos_id = -1;
  bool no_verify = false, keep_pii = false, no_boilerplate = false, no_repetition = false, no_control = false;
  data::PrepareOptions options;
};

void run_prepare(PrepareArgs& a) {
  data::PrepareOptions o = a.options;
  o.inputs.assign(a.inputs.begin(), a.inputs.end());
  o.tokenizer = a.tokenizer;
  o.out = a.out;
  o.reader.format = data::parse_input_format(a.format);
  o.dedup.mode = data::parse_dedup_mode(a.dedup);
  o.dedup.verify = !a.no_verify;
  o.filters.normalization = data::parse_normalization(a.normalize);
  o.filters.mask_emails = o.filters.mask_phones = !a.keep_pii;
  o.filters.remove_boilerplate = !a.no_boilerplate;
  o.filters.repetition = !a.no_repetition;
  o.filters.strip_control = !a.no_control;
  if (a.eos_id >= 0) o.eos_id = a.eos_id;
  auto progress = std::make_shared<Progress>("documents");
  o.progress = [progress](const data::PrepareProgress& p) { progress->tick(size_t(p.documents)); };
  const data::PrepareReport report = data::prepare_dataset(o);
  progress->done();
  std::printf("data prepare -> %s\n%s", a.out.c_str(), data::report_table(report).c_str());
}

void add_prepare(CLI::App& data_cmd, std::function<void()>& run) {
  auto* cmd = data_cmd.add_subcommand("prepare", "Clean, deduplicate and tokenize corpora into token shards");
  auto a = std::make_shared<PrepareArgs>();
  data::PrepareOptions& o = a->options;
  cmd->add_option("--input", a->inputs, "files or folders: .txt, .jsonl, fortune files, optionally .gz/.zst")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer folder or .model file")->required();
  cmd->add_option("--out", a->out, "output folder (shards, index.json, report.json)")->required();
  cmd->add_flag("--force", o.force, "replace an existing output folder");
  cmd->add_option("--format", a->format, "auto, text, jsonl or fortune")
      ->check(CLI::IsMember({"auto", "text", "jsonl", "fortune"}))
      ->capture_default_str();
  cmd->add_option("--text-field", o.reader.text_field, "JSONL field holding the text")->capture_default_str();
  cmd->add_flag("--doc-per-line", o.reader.doc_per_line, "text files: one document per line (default: per blank-line block)");
  cmd->add_flag("--skip-bad-lines", o.skip_bad_lines, "JSONL: skip lines that cannot be read (counted in the report) instead of stopping");
  cmd->add_option("--val-fraction", o.val_fraction, "share of documents for the val split (by hash)")->capture_default_str();
  cmd->add_option("--split-seed", o.split_seed, "seed of the train/val hash")->capture_default_str();
  cmd->add_option("--shard-tokens", o.shard_tokens, "tokens per shard file at most")->capture_default_str();
  cmd->add_option("--eos-id", a->eos_id, "EOS id after each document (default: the tokenizer's end-of-text token)");
  cmd->add_option("--threads", o.threads, "threads for cleaning and tokenizing (0 = all cores)")->capture_default_str();
  cmd->add_option("--dedup", a->dedup, "none, exact or minhash")
      ->check(CLI::IsMember({"none", "exact", "minhash"}))
      ->capture_default_str();
  cmd->add_option("--minhash-threshold", o.dedup.threshold, "Jaccard similarity counted as a near duplicate")
      ->capture_default_str();
  cmd->add_option("--minhash-perm", o.dedup.num_perm, "MinHash permutations")->capture_default_str();
  cmd->add_flag("--no-minhash-verify", a->no_verify,
                "minhash: treat any shared band as a duplicate (less memory, more false positives)");
  cmd->add_option("--shingle", o.dedup.shingle_chars, "MinHash shingle size in characters")->capture_default_str();
  cmd->add_option("--normalize", a->normalize, "Unicode normalisation: none, nfc or nfkc")
      ->check(CLI::IsMember({"none", "nfc", "nfkc"}))
      ->capture_default_str();
  cmd->add_option("--min-chars", o.filters.min_chars, "drop documents shorter (code points)")->capture_default_str();
  cmd->add_option("--max-chars", o.filters.max_chars, "drop documents longer (code points)")->capture_default_str();
  cmd->add_option("--max-non-letter", o.filters.max_non_letter_fraction,
                  "drop documents whose non-space characters are more than this share non-letters")
      ->capture_default_str();
  cmd->add_flag("--drop-code", o.filters.drop_code, "drop code-like documents");
  cmd->add_flag("--keep-pii", a->keep_pii, "do not mask e-mail addresses and phone numbers");
  cmd->add_flag("--no-boilerplate", a->no_boilerplate, "keep ad and navigation lines");
  cmd->add_flag("--no-repetition", a->no_repetition, "skip Gopher's repetition rules");
  cmd->add_flag("--no-control-strip", a->no_control, "keep control characters");
  run = [a] { run_prepare(*a); };
}

}  // namespace

void add_data_command(CLI::App& app, std::function<void()>& run) {
  add_command_group(app, run, "data", "Prepare and augment training data",
                    {add_prepare, add_data_augment});
}

}  // namespace ld::cli
