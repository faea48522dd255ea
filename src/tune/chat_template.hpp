#pragma once
// Chat templates: a conversation (system/user/assistant messages) rendered into the text a model is
// trained on. ChatML is built in; a Hugging Face tokenizer_config.json brings its own Jinja template
// (rendered by tune/jinja.hpp with the config's bos/eos/pad/unk tokens in the context, as
// transformers' apply_chat_template does).
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

namespace ld::tune {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  bool operator==(const ChatMessage&) const = default;
};

// Throws ld::Error "WHERE: unknown role 'ROLE' (expected system, user or assistant)".
void check_role(const std::string& role, const std::string& where);

class ChatTemplate {
 public:
  // "<|im_start|>{role}\n{content}<|im_end|>\n" per message; generation prompt "<|im_start|>assistant\n".
  static ChatTemplate chatml();
  // The "chat_template" string of a tokenizer_config.json (PATH is the file or its folder); a config
  // without one is an error that tells the user to choose ChatML instead.
  static ChatTemplate from_tokenizer_config(const std::filesystem::path& path);

  // The text of `messages`; with add_generation_prompt, followed by what opens an assistant turn.
  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  // The text that closes an assistant turn ("<|im_end|>" for ChatML, the config's eos_token for a
  // config template; may be empty). Loss masks train a response up to and including it.
  const std::string& end_of_turn() const { return end_of_turn_; }
  // "chatml" or the tokenizer_config.json path, for messages.
  const std::string& origin() const { return origin_; }

 private:
  std::shared_ptr<const jinja::Template> jinja_;  // null: ChatML
  nlohmann::json special_tokens_ = nlohmann::json::object();  // bos_token, eos_token, ... for the context
  std::string end_of_turn_;
  std::string origin_;
};

}  // namespace ld::tune
