#include "tune/synthetic_tasks.hpp"

#include <nlohmann/json.hpp>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"

namespace ld::tune {

namespace {

// Draws for example `index` of a task: independent of how many examples are generated.
class ExampleDraws {
 public:
  ExampleDraws(uint64_t seed, uint64_t task, int64_t index) : seed_(seed), task_(task), index_(uint64_t(index)) {}
  int64_t below(int64_t n) {  // uniform in [0, n)
    const auto r = philox4x32(seed_, task_, (index_ << 16) | counter_++);
    return int64_t((uint64_t(r[0]) * uint64_t(n)) >> 32);
  }

 private:
  uint64_t seed_, task_, index_, counter_ = 0;
};

void check_count(int64_t count) { LD_CHECK(count >= 0, "synthetic task: count must be non-negative, got ", count); }

const std::vector<std::string> kVocabularyA = {"apple", "pear", "plum", "grape", "melon", "cherry", "lemon", "peach"};
const std::vector<std::string> kVocabularyB = {"river", "stone", "cloud", "hill", "storm", "field", "lake", "wind"};

std::string to_jsonl(const std::vector<nlohmann::json>& records) {
  std::string out;
  for (const nlohmann::json& r : records) out += r.dump() + "\n";
  return out;
}

}  // namespace

std::vector<InstructionPair> arithmetic_task(int64_t count, uint64_t seed) {
  check_count(count);
  std::vector<InstructionPair> out;
  for (int64_t i = 0; i < count; ++i) {
    ExampleDraws d(seed, 1, i);
    const int64_t a = d.below(100), b = d.below(100);
    const bool plus = d.below(2) == 0;
    out.push_back({"What is " + std::to_string(a) + (plus ? " + " : " - ") + std::to_string(b) + "?", "",
                   std::to_string(plus ? a + b : a - b)});
  }
  return out;
}

std::vector<InstructionPair> reversal_task(int64_t count, uint64_t seed) {
  check_count(count);
  std::vector<InstructionPair> out;
  for (int64_t i = 0; i < count; ++i) {
    ExampleDraws d(seed, 2, i);
    std::string word(size_t(3 + d.below(6)), 'a');
    for (char& c : word) c = char('a' + d.below(26));
    out.push_back({"Reverse: " + word, "", std::string(word.rbegin(), word.rend())});
  }
  return out;
}

std::vector<LabeledText> separable_classification_task(int64_t count, uint64_t seed) {
  check_count(count);
  std::vector<LabeledText> out;
  for (int64_t i = 0; i < count; ++i) {
    ExampleDraws d(seed, 3, i);
    const bool class_a = d.below(2) == 0;
    const std::vector<std::string>& words = class_a ? kVocabularyA : kVocabularyB;
    std::string text;
    for (int64_t w = 0, n = 4 + d.below(7); w < n; ++w) text += (w ? " " : "") + words[size_t(d.below(int64_t(words.size())))];
    out.push_back({text, class_a ? "a" : "b"});
  }
  return out;
}

void write_alpaca_jsonl(const std::filesystem::path& path, const std::vector<InstructionPair>& pairs) {
  std::vector<nlohmann::json> records;
  for (const InstructionPair& p : pairs)
    records.push_back({{"instruction", p.instruction}, {"input", p.input}, {"output", p.output}});
  write_file_atomically(path, to_jsonl(records));
}

void write_chat_jsonl(const std::filesystem::path& path, const std::vector<InstructionPair>& pairs,
                      const std::string& system_prompt) {
  std::vector<nlohmann::json> records;
  for (const InstructionPair& p : pairs) {
    nlohmann::json messages = nlohmann::json::array();
    if (!system_prompt.empty()) messages.push_back({{"role", "system"}, {"content", system_prompt}});
    const std::string user = p.input.empty() ? p.instruction : p.instruction + "\n\n" + p.input;
    messages.push_back({{"role", "user"}, {"content", user}});
    messages.push_back({{"role", "assistant"}, {"content", p.output}});
    records.push_back({{"messages", messages}});
  }
  write_file_atomically(path, to_jsonl(records));
}

void write_classify_jsonl(const std::filesystem::path& path, const std::vector<LabeledText>& items) {
  std::vector<nlohmann::json> records;
  for (const LabeledText& item : items) records.push_back({{"text", item.text}, {"label", item.label}});
  write_file_atomically(path, to_jsonl(records));
}

}  // namespace ld::tune
