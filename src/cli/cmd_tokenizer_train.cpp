// `liandan tokenizer train --input FILE... --vocab-size N --out DIR`: train a byte-level BPE
// tokenizer and save it as tokenizer.json + tokenizer_config.json. Progress goes to stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "tokenizer/bpe_trainer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One progress line, rewritten in place at most ten times a second: merges, merges/s, ETA. The clock
// starts at the first merge, so the rate leaves out the pre-token counting.
std::function<void(size_t, size_t)> progress_line() {
  auto start = std::make_shared<Clock::time_point>();
  auto last = std::make_shared<Clock::time_point>();
  return [start, last](size_t done, size_t total) {
    auto now = Clock::now();
    if (*start == Clock::time_point{}) *start = *last = now;  // first line after 0.1 s: a rate that means something
    if (done < total && now - *last < std::chrono::milliseconds(100)) return;
    *last = now;
    double elapsed = seconds_since(*start);
    double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
    double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    std::fprintf(stderr, "\rmerges %zu/%zu  %.0f merges/s  ETA %.1fs   ", done, total, rate, eta);
    std::fflush(stderr);
  };
}

}  // namespace

void add_tokenizer_train(CLI::App& tokenizer_cmd, std::function<void()>& run) {
  auto* cmd = tokenizer_cmd.add_subcommand("train", "Train a byte-level BPE tokenizer (saved as tokenizer.json)");
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto options = std::make_shared<tok::BpeTrainOptions>();
  cmd->add_option("--input", *inputs, "text files to train on (streamed; any size)")->required();
  cmd->add_option("--vocab-size", options->vocab_size, "tokens in the vocabulary: 256 bytes + special tokens + merges")
      ->required();
  cmd->add_option("--out", *out, "folder to write tokenizer.json and tokenizer_config.json into")->required();
  cmd->add_option("--special", options->special_tokens, "special token (repeatable), e.g. --special '<|endoftext|>'");
  cmd->add_option("--min-frequency", options->min_frequency, "stop when the most frequent pair occurs fewer times")
      ->capture_default_str();
  cmd->add_option("--pattern", options->pattern, "pre-tokenizer regex: gpt2 or cl100k")
      ->check(CLI::IsMember({"gpt2", "cl100k"}))
      ->capture_default_str();
  cmd->add_option("--threads", options->threads, "threads for counting pre-tokens (0 = all cores)")->capture_default_str();
  run = [=] {
    auto start = Clock::now();
    std::vector<std::filesystem::path> files(inputs->begin(), inputs->end());
    tok::BpeTrainOptions opts = *options;
    if (isatty(fileno(stderr))) opts.progress = progress_line();  // logs get the summary line only
    std::fprintf(stderr, "tokenizer train: counting pre-tokens in %zu file(s)\n", files.size());
    tok::ByteLevelBpeData data = tok::train_byte_level_bpe(files, opts);
    tok::save_tokenizer_json(data, *out);
    if (opts.progress) std::fputc('\n', stderr);
    std::fprintf(stderr, "tokenizer train: %zu tokens (%zu merges) in %.2fs -> %s\n", data.vocab.size(),
                 data.merges.size(), seconds_since(start), out->c_str());
  };
}

}  // namespace ld::cli
