#pragma once
// Small synthetic fine-tuning tasks for tests and demos: a tiny model can learn them in minutes,
// and whether it did is checked exactly. Each generator is deterministic by seed (Philox draws).
//
//   arithmetic      "What is 23 + 48?" -> "71"   (two operands in [0, 100), + or -)
//   reversal        "Reverse: abcde" -> "edcba"  (3..8 lowercase letters)
//   classification  texts of 4..10 words; label "a" when the words come from vocabulary A,
//                   "b" from vocabulary B (disjoint), so the classes are separable by any word.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ld::tune {

struct InstructionPair {
  std::string instruction;
  std::string input;  // empty for these tasks
  std::string output;
};

struct LabeledText {
  std::string text;
  std::string label;
};

std::vector<InstructionPair> arithmetic_task(int64_t count, uint64_t seed);
std::vector<InstructionPair> reversal_task(int64_t count, uint64_t seed);
std::vector<LabeledText> separable_classification_task(int64_t count, uint64_t seed);

// JSONL writers (atomic): Alpaca records, chat records (an optional system message, then user and
// assistant), and {"text", "label"} records.
void write_alpaca_jsonl(const std::filesystem::path& path, const std::vector<InstructionPair>& pairs);
void write_chat_jsonl(const std::filesystem::path& path, const std::vector<InstructionPair>& pairs,
                      const std::string& system_prompt = "");
void write_classify_jsonl(const std::filesystem::path& path, const std::vector<LabeledText>& items);

}  // namespace ld::tune
