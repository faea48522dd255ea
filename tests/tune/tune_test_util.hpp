#pragma once
// Helpers for the fine-tuning data tests.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tokenizer/bpe_trainer.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tune/synthetic_tasks.hpp"
#include "train/objectives.hpp"
#include "tune/sft_example.hpp"

namespace ld::tune::test {

inline const std::filesystem::path kQwen3Dir = std::filesystem::path(LIANDAN_SHARED_DIR) / "tokenizers/qwen3";

// The real Qwen3 tokenizer (151k vocabulary, <|im_start|>/<|im_end|> special tokens), loaded once.
inline const tok::Tokenizer& qwen3() {
  static const auto t = tok::load_tokenizer(kQwen3Dir);
  return *t;
}

inline void write_text(const std::filesystem::path& path, const std::string& text);

// A small byte-level BPE (vocabulary 400, ChatML's special tokens) trained here on synthetic
// instructions: loads in no time, where each process loading Qwen3's takes most of a second.
inline const tok::Tokenizer& small_bpe() {
  static const auto t = [] {
    ld::test::TempDir dir("tune_bpe");
    std::string corpus;
    for (const InstructionPair& p : arithmetic_task(200, 1)) corpus += p.instruction + " " + p.output + "\n";
    for (const InstructionPair& p : reversal_task(200, 2)) corpus += p.instruction + " " + p.output + "\n";
    write_text(dir / "corpus.txt", corpus);
    tok::BpeTrainOptions options;
    options.vocab_size = 400;
    options.special_tokens = {"<|im_start|>", "<|im_end|>"};
    options.threads = 1;
    tok::save_tokenizer_json(tok::train_byte_level_bpe({dir / "corpus.txt"}, options), dir / "tok");
    return tok::load_tokenizer(dir / "tok");
  }();
  return *t;
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The decoded text of each maximal run of trained tokens (labels != -100), in order.
inline std::vector<std::string> trained_spans(const SftExample& e, const tok::Tokenizer& t) {
  std::vector<std::string> spans;
  std::vector<int32_t> run;
  for (size_t i = 0; i <= e.labels.size(); ++i) {
    if (i < e.labels.size() && e.labels[i] != int32_t(train::kIgnoreLabel)) {
      EXPECT_EQ(e.labels[i], e.ids[i]) << "a trained label must be its own token";
      run.push_back(e.ids[i]);
    } else if (!run.empty()) {
      spans.push_back(t.decode(run));
      run.clear();
    }
  }
  return spans;
}

}  // namespace ld::tune::test
