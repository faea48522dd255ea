// Chat templates: ChatML's exact text, roles, and a tokenizer_config.json template (Qwen3's) rendered
// through the Jinja engine, compared with the text its template produces in transformers.
#include "tune/chat_template.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;

const std::vector<ChatMessage> kChat = {
    {"system", "You add numbers."}, {"user", "What is 2 + 3?"}, {"assistant", "5"}};

TEST(ChatTemplate, ChatmlRendersExactText) {
  const ChatTemplate t = ChatTemplate::chatml();
  EXPECT_EQ(t.render(kChat, false),
            "<|im_start|>system\nYou add numbers.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
            "<|im_start|>assistant\n5<|im_end|>\n");
  EXPECT_EQ(t.render(std::span(kChat).first(2), true),
            "<|im_start|>system\nYou add numbers.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(t.render({}, true), "<|im_start|>assistant\n");
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
}

TEST(ChatTemplate, UnknownRoleIsNamed) {
  EXPECT_NO_THROW(check_role("assistant", "x"));
  const std::string msg = error_message([] { check_role("tool", "chat.jsonl:4: message 2"); });
  expect_mentions(msg, {"chat.jsonl:4: message 2", "unknown role 'tool'", "system, user or assistant"});
}

TEST(ChatTemplate, ConfigWithoutTemplateSuggestsChatml) {
  ld::test::TempDir dir;
  test::write_text(dir / "tokenizer_config.json", R"({"eos_token": "</s>"})");
  const std::string msg = error_message([&] { ChatTemplate::from_tokenizer_config(dir / "tokenizer_config.json"); });
  expect_mentions(msg, {"tokenizer_config.json", "chat_template", "ChatML"});
}

TEST(ChatTemplate, ConfigTemplateGetsSpecialTokens) {
  ld::test::TempDir dir;
  // eos_token as an AddedToken object, bos_token as a string: both reach the context.
  test::write_text(dir / "tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": {"content": "</s>"},
    "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"})");
  const ChatTemplate t = ChatTemplate::from_tokenizer_config(dir / "tokenizer_config.json");
  EXPECT_EQ(t.render(std::span(kChat).subspan(1), false), "<s>[user] What is 2 + 3?</s>[assistant] 5</s>");
  EXPECT_EQ(t.render(std::span(kChat).subspan(1, 1), true), "<s>[user] What is 2 + 3?</s>[assistant] ");
  EXPECT_EQ(t.end_of_turn(), "</s>");
}

TEST(ChatTemplate, Qwen3ConfigTemplate) {
  const ChatTemplate t = ChatTemplate::from_tokenizer_config(test::kQwen3Dir);  // the folder works too
  EXPECT_EQ(t.end_of_turn(), "<|im_end|>");
  // What jinja2 3.1.6 renders with transformers' settings for these messages (checked by hand): the last
  // assistant turn (after the last user query) carries an empty <think> block.
  EXPECT_EQ(t.render(kChat, false),
            "<|im_start|>system\nYou add numbers.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n5<|im_end|>\n");
  EXPECT_EQ(t.render(std::span(kChat).first(2), true),
            "<|im_start|>system\nYou add numbers.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
            "<|im_start|>assistant\n");
}

}  // namespace
}  // namespace ld::tune
