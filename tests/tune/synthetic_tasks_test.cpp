// Synthetic tasks: answers are right, generation is deterministic by seed, and the JSONL writers
// round-trip through the readers.
#include "tune/synthetic_tasks.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "test_util.hpp"
#include "tune/classify_data.hpp"
#include "tune/sft_data.hpp"

namespace ld::tune {
namespace {

TEST(SyntheticTasks, ArithmeticAnswersAreRight) {
  const std::vector<InstructionPair> pairs = arithmetic_task(200, 1);
  ASSERT_EQ(pairs.size(), 200u);
  int plus = 0;
  for (const InstructionPair& p : pairs) {
    int a = 0, b = 0;
    char op = 0;
    ASSERT_EQ(std::sscanf(p.instruction.c_str(), "What is %d %c %d?", &a, &op, &b), 3) << p.instruction;
    EXPECT_TRUE(a >= 0 && a < 100 && b >= 0 && b < 100);
    EXPECT_EQ(p.output, std::to_string(op == '+' ? a + b : a - b)) << p.instruction;
    plus += op == '+';
  }
  EXPECT_GT(plus, 60);
  EXPECT_LT(plus, 140);
  EXPECT_EQ(arithmetic_task(5, 1)[4].instruction, pairs[4].instruction) << "example i does not depend on the count";
  EXPECT_NE(arithmetic_task(5, 2)[4].instruction + arithmetic_task(5, 2)[3].instruction,
            pairs[4].instruction + pairs[3].instruction);
}

TEST(SyntheticTasks, ReversalOutputsAreReversed) {
  for (const InstructionPair& p : reversal_task(100, 4)) {
    ASSERT_TRUE(p.instruction.starts_with("Reverse: "));
    std::string word = p.instruction.substr(9);
    EXPECT_TRUE(word.size() >= 3 && word.size() <= 8);
    std::reverse(word.begin(), word.end());
    EXPECT_EQ(p.output, word);
  }
}

TEST(SyntheticTasks, ClassificationIsSeparableByWords) {
  std::set<std::string> words_a, words_b;
  for (const LabeledText& item : separable_classification_task(300, 5)) {
    std::set<std::string>& words = item.label == "a" ? words_a : words_b;
    ASSERT_TRUE(item.label == "a" || item.label == "b");
    size_t start = 0;
    for (size_t end; (end = item.text.find(' ', start)) != std::string::npos; start = end + 1)
      words.insert(item.text.substr(start, end - start));
    words.insert(item.text.substr(start));
  }
  EXPECT_FALSE(words_a.empty());
  EXPECT_FALSE(words_b.empty());
  for (const std::string& w : words_a) EXPECT_EQ(words_b.count(w), 0u) << w;
}

TEST(SyntheticTasks, JsonlRoundTrips) {
  ld::test::TempDir dir;
  const std::vector<InstructionPair> pairs = reversal_task(10, 6);
  write_alpaca_jsonl(dir / "a.jsonl", pairs);
  write_chat_jsonl(dir / "c.jsonl", pairs, "You reverse strings.");
  const std::vector<Conversation> alpaca = read_sft_jsonl(dir / "a.jsonl");
  const std::vector<Conversation> chat = read_sft_jsonl(dir / "c.jsonl");
  ASSERT_EQ(alpaca.size(), 10u);
  ASSERT_EQ(chat.size(), 10u);
  for (size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ(alpaca[i].messages, alpaca_conversation(pairs[i].instruction, "", pairs[i].output).messages);
    ASSERT_EQ(chat[i].messages.size(), 3u);
    EXPECT_EQ(chat[i].messages[0], (ChatMessage{"system", "You reverse strings."}));
    EXPECT_EQ(std::vector<ChatMessage>(chat[i].messages.begin() + 1, chat[i].messages.end()), alpaca[i].messages);
  }
  const std::vector<LabeledText> items = separable_classification_task(20, 7);
  write_classify_jsonl(dir / "k.jsonl", items);
  const ClassifyData d = read_classify_jsonl(dir / "k.jsonl", label_set_from_file(dir / "k.jsonl"));
  EXPECT_EQ(d.label_set, (std::vector<std::string>{"a", "b"}));
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(d.examples[i].text, items[i].text);
    EXPECT_EQ(d.label_set[size_t(d.examples[i].label)], items[i].label);
  }
}

}  // namespace
}  // namespace ld::tune
