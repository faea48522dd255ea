#include "tune/chat_template.hpp"

#include <fstream>
#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "tune/jinja.hpp"

namespace ld::tune {

void check_role(const std::string& role, const std::string& where) {
  LD_CHECK(role == "system" || role == "user" || role == "assistant", where, ": unknown role '", role,
           "' (expected system, user or assistant)");
}

ChatTemplate ChatTemplate::chatml() {
  ChatTemplate t;
  t.end_of_turn_ = "<|im_end|>";
  t.origin_ = "chatml";
  return t;
}

namespace {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  LD_CHECK(in.good(), path.string(), ": cannot open for reading");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    LD_FAIL(path.string(), ": not valid JSON (", e.what(), ")");
  }
}

// A special token in tokenizer_config.json is a string or an AddedToken object {"content": ...}.
std::optional<std::string> token_text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

ChatTemplate ChatTemplate::from_tokenizer_config(const std::filesystem::path& given) {
  const std::filesystem::path path =
      std::filesystem::is_directory(given) ? given / "tokenizer_config.json" : given;
  const nlohmann::json config = read_json_file(path);
  LD_CHECK(config.is_object(), path.string(), ": expected a JSON object");
  const auto found = config.find("chat_template");
  LD_CHECK(found != config.end() && found->is_string() && !found->get<std::string>().empty(), path.string(),
           ": no \"chat_template\" string (templates given as a list of named templates are not supported); "
           "use the built-in ChatML template instead");
  ChatTemplate t;
  t.origin_ = path.string();
  t.jinja_ = std::make_shared<const jinja::Template>(found->get<std::string>(), t.origin_);
  for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token"}) {
    if (!config.contains(key)) continue;
    if (const auto text = token_text(config[key])) t.special_tokens_[key] = *text;
  }
  if (t.special_tokens_.contains("eos_token")) t.end_of_turn_ = t.special_tokens_["eos_token"].get<std::string>();
  return t;
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  if (!jinja_) {
    std::string out;
    for (const ChatMessage& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  nlohmann::json context = special_tokens_;
  context["messages"] = nlohmann::json::array();
  for (const ChatMessage& m : messages) context["messages"].push_back({{"role", m.role}, {"content", m.content}});
  context["add_generation_prompt"] = add_generation_prompt;
  return jinja_->render(context);
}

}  // namespace ld::tune
