// Instruction JSONL: format detection, validation errors naming file:line, and the truncation policy.
#include "tune/sft_data.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;
using ld::test::TempDir;
using test::small_bpe;
using test::write_text;

TEST(SftData, ReadsAlpacaAndChatFiles) {
  TempDir dir;
  write_text(dir / "a.jsonl", R"({"instruction": "Add.", "input": "1 2", "output": "3"}

{"instruction": "Say hi.", "output": "hi"})"
                                  "\n");
  write_text(dir / "c.jsonl",
             R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]})"
             "\n");
  const std::vector<Conversation> a = read_sft_jsonl(dir / "a.jsonl");
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].messages, alpaca_conversation("Add.", "1 2", "3").messages);
  EXPECT_EQ(a[1].messages, alpaca_conversation("Say hi.", "", "hi").messages);
  EXPECT_EQ(a[1].source, (dir / "a.jsonl").string() + ":3");  // the blank line is counted
  const std::vector<Conversation> c = read_sft_jsonl(dir / "c.jsonl");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].messages, (std::vector<ChatMessage>{{"system", "S"}, {"user", "U"}, {"assistant", "A"}}));
}

// The error for a file whose line 2 is `bad_line` (line 1 is a good record of the same format).
std::string error_for(const std::string& first, const std::string& bad_line) {
  TempDir dir;
  write_text(dir / "d.jsonl", first + "\n" + bad_line + "\n");
  return error_message([&] { read_sft_jsonl(dir / "d.jsonl"); });
}

TEST(SftData, BadRecordsNameFileAndLine) {
  const std::string chat = R"({"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]})";
  const std::string alpaca = R"({"instruction": "I", "output": "O"})";
  expect_mentions(error_for(chat, R"({"messages": [{"role": "tool", "content": "x"}]})"),
                  {"d.jsonl:2", "message 1", "unknown role 'tool'"});
  expect_mentions(error_for(chat, R"({"messages": [{"role": "user", "content": "U"})"),
                  {"d.jsonl:2", "malformed JSON"});
  expect_mentions(error_for(chat, R"({"messages": []})"), {"d.jsonl:2", "empty conversation"});
  expect_mentions(error_for(chat, R"({"messages": [{"role": "user", "content": "U"}]})"),
                  {"d.jsonl:2", "no assistant turn"});
  expect_mentions(error_for(chat, R"({"messages": [{"role": "user"}]})"), {"d.jsonl:2", "missing key \"content\""});
  expect_mentions(error_for(chat, alpaca), {"d.jsonl:2", "missing key \"messages\""});
  expect_mentions(error_for(alpaca, R"({"instruction": "I"})"), {"d.jsonl:2", "missing key \"output\""});
  expect_mentions(error_for(alpaca, R"({"instruction": "I", "output": 3})"), {"d.jsonl:2", "\"output\" must be a string"});
  expect_mentions(error_for(alpaca, "[1, 2]"), {"d.jsonl:2", "expected a JSON object"});
  expect_mentions(error_for(R"({"text": "plain"})", alpaca), {"d.jsonl:1", "not an instruction record"});
}

TEST(SftData, TruncatesFromTheRightAndDropsUntrainable) {
  const ChatTemplate t = ChatTemplate::chatml();
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += " word";
  std::vector<Conversation> data = {alpaca_conversation("Short question?", "", "A fairly long answer, word after word."),
                                    alpaca_conversation(long_prompt + " What now?", "", "Nothing."),
                                    alpaca_conversation("Q", "", "A")};
  const SftExample full = tokenize_conversation(t, small_bpe(), data[0].messages, "test");
  const int64_t seq_len = int64_t(full.ids.size()) - 3;  // cuts the tail of the first answer only
  const SftExample long_one = tokenize_conversation(t, small_bpe(), data[1].messages, "test");
  ASSERT_GT(int64_t(long_one.ids.size()), seq_len);
  for (int64_t i = 0; i < seq_len; ++i)
    ASSERT_EQ(long_one.labels[size_t(i)], int32_t(train::kIgnoreLabel)) << "setup: the prompt must fill seq_len";

  const SftDataset d = build_sft_dataset(data, t, small_bpe(), seq_len);
  EXPECT_EQ(d.truncated, 2);
  EXPECT_EQ(d.dropped, 1);
  ASSERT_EQ(d.examples.size(), 2u);
  EXPECT_EQ(d.examples[0].ids, std::vector<int32_t>(full.ids.begin(), full.ids.begin() + seq_len));
  EXPECT_EQ(d.examples[0].labels, std::vector<int32_t>(full.labels.begin(), full.labels.begin() + seq_len));
  EXPECT_EQ(d.examples[1].ids, tokenize_conversation(t, small_bpe(), data[2].messages, "test").ids);
  expect_mentions(d.warning(), {"1 instruction example(s) dropped", "seq_len"});
  EXPECT_EQ(build_sft_dataset({data[2]}, t, small_bpe(), 512).warning(), "");
}

}  // namespace
}  // namespace ld::tune
