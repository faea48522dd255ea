// Loss masks: the trained tokens of a tokenized conversation, decoded, are exactly each assistant
// response followed by its end-of-turn marker; everything else is -100. Checked with the real Qwen3
// tokenizer (and a small BPE trained by the test), ChatML and Qwen3's own template, for multi-turn
// chats and Alpaca records.
#include "tune/sft_example.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "tune/sft_data.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;
using test::qwen3;
using test::small_bpe;
using test::trained_spans;

const std::vector<ChatMessage> kMultiTurn = {{"system", "Be brief."},
                                             {"user", "What is 23 + 48?"},
                                             {"assistant", "71"},
                                             {"user", "Reverse: abcde"},
                                             {"assistant", "edcba, done."}};

TEST(SftMask, ChatmlMultiTurnTrainsResponsesAndEndMarkers) {
  const ChatTemplate t = ChatTemplate::chatml();
  const SftExample e = tokenize_conversation(t, qwen3(), kMultiTurn, "test");
  ASSERT_EQ(e.ids.size(), e.labels.size());
  EXPECT_EQ(trained_spans(e, qwen3()), (std::vector<std::string>{"71<|im_end|>", "edcba, done.<|im_end|>"}));
  // The segments together are the whole rendered text, and here (boundaries next to special tokens
  // and newlines) segment-wise ids equal whole-text ids.
  EXPECT_EQ(qwen3().decode(e.ids), t.render(kMultiTurn, false));
  EXPECT_EQ(e.ids, qwen3().encode(t.render(kMultiTurn, false)));
}

TEST(SftMask, SegmentsAlternateAndCoverTheText) {
  const std::vector<TextSegment> s = segment_conversation(ChatTemplate::chatml(), kMultiTurn, "test");
  ASSERT_EQ(s.size(), 5u);
  EXPECT_FALSE(s[0].trained);
  EXPECT_EQ(s[0].text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 23 + 48?<|im_end|>\n"
                       "<|im_start|>assistant\n");
  EXPECT_TRUE(s[1].trained);
  EXPECT_EQ(s[1].text, "71<|im_end|>");
  EXPECT_EQ(s[2].text, "\n<|im_start|>user\nReverse: abcde<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(s[3].text, "edcba, done.<|im_end|>");
  EXPECT_EQ(s[4].text, "\n");
}

TEST(SftMask, TrailingUserTurnIsNotTrained) {
  const std::vector<ChatMessage> chat = {{"user", "hi"}, {"assistant", "hello"}, {"user", "bye"}};
  const SftExample e = tokenize_conversation(ChatTemplate::chatml(), small_bpe(), chat, "test");
  EXPECT_EQ(trained_spans(e, small_bpe()), std::vector<std::string>{"hello<|im_end|>"});
}

TEST(SftMask, AlpacaRecordBecomesUserAndAssistant) {
  const Conversation with_input = alpaca_conversation("Add the numbers.", "23 48", "71");
  ASSERT_EQ(with_input.messages.size(), 2u);
  EXPECT_EQ(with_input.messages[0], (ChatMessage{"user", "Add the numbers.\n\n23 48"}));
  EXPECT_EQ(with_input.messages[1], (ChatMessage{"assistant", "71"}));
  EXPECT_EQ(alpaca_conversation("Say hi.", "", "hi").messages[0].content, "Say hi.");
  const SftExample e = tokenize_conversation(ChatTemplate::chatml(), small_bpe(), with_input.messages, "test");
  EXPECT_EQ(trained_spans(e, small_bpe()), std::vector<std::string>{"71<|im_end|>"});
  EXPECT_EQ(small_bpe().decode(e.ids), ChatTemplate::chatml().render(with_input.messages, false));
}

TEST(SftMask, Qwen3TemplateSingleTurn) {
  const ChatTemplate t = ChatTemplate::from_tokenizer_config(test::kQwen3Dir / "tokenizer_config.json");
  const std::vector<ChatMessage> chat(kMultiTurn.begin(), kMultiTurn.begin() + 3);
  const SftExample e = tokenize_conversation(t, qwen3(), chat, "test");
  // Qwen3's template writes an empty think block into the final response; it is part of the response.
  EXPECT_EQ(trained_spans(e, qwen3()), std::vector<std::string>{"<think>\n\n</think>\n\n71<|im_end|>"});
  EXPECT_EQ(qwen3().decode(e.ids), t.render(chat, false));
}

TEST(SftMask, InconsistentTemplateIsAnError) {
  // Qwen3's template drops the think block of an earlier turn once a later user turn exists, so the
  // rendering of the first turns is not a prefix of the rendering of the whole chat.
  const ChatTemplate t = ChatTemplate::from_tokenizer_config(test::kQwen3Dir / "tokenizer_config.json");
  const std::string msg = error_message([&] { segment_conversation(t, kMultiTurn, "chat.jsonl:7"); });
  expect_mentions(msg, {"chat.jsonl:7", "inconsistent", "tokenizer_config.json", "ChatML"});
}

}  // namespace
}  // namespace ld::tune
