#include "tune/sft_example.hpp"

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/objectives.hpp"

namespace ld::tune {

namespace {

// Renders of growing prefixes, checked to extend each other.
class PrefixRenderer {
 public:
  PrefixRenderer(const ChatTemplate& t, std::span<const ChatMessage> messages, const std::string& where)
      : template_(t), messages_(messages), where_(where) {}

  // The text that render(messages[:count], generation_prompt) adds to the previous render.
  std::string extend(size_t count, bool generation_prompt) {
    std::string text = template_.render(messages_.first(count), generation_prompt);
    LD_CHECK(text.starts_with(previous_), where_, ": the chat template (", template_.origin(),
             ") is inconsistent: rendering the first ", count, " messages",
             generation_prompt ? " with the generation prompt" : "",
             " does not extend the rendering of the messages before them, so the response tokens cannot "
             "be located (use the built-in ChatML template instead)");
    std::string added = text.substr(previous_.size());
    previous_ = std::move(text);
    return added;
  }

 private:
  const ChatTemplate& template_;
  std::span<const ChatMessage> messages_;
  const std::string& where_;
  std::string previous_;
};

void append(std::vector<TextSegment>& segments, std::string text, bool trained) {
  if (text.empty()) return;
  if (!segments.empty() && segments.back().trained == trained) {
    segments.back().text += text;
  } else {
    segments.push_back({std::move(text), trained});
  }
}

}  // namespace

std::vector<TextSegment> segment_conversation(const ChatTemplate& chat_template, std::span<const ChatMessage> messages,
                                              const std::string& where) {
  PrefixRenderer renderer(chat_template, messages, where);
  std::vector<TextSegment> segments;
  const std::string& marker = chat_template.end_of_turn();
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "assistant") continue;
    append(segments, renderer.extend(i, true), false);
    std::string response = renderer.extend(i + 1, false);
    // Text after the end-of-turn marker (ChatML's "\n") belongs to the next prompt, not the response.
    const size_t at = marker.empty() ? std::string::npos : response.rfind(marker);
    const size_t trained_end = at == std::string::npos ? response.size() : at + marker.size();
    append(segments, response.substr(0, trained_end), true);
    append(segments, response.substr(trained_end), false);
  }
  append(segments, renderer.extend(messages.size(), false), false);
  return segments;
}

SftExample tokenize_conversation(const ChatTemplate& chat_template, const tok::Tokenizer& tokenizer,
                                 std::span<const ChatMessage> messages, const std::string& where) {
  SftExample example;
  for (const TextSegment& segment : segment_conversation(chat_template, messages, where)) {
    const std::vector<int32_t> ids = tokenizer.encode(segment.text, false);
    example.ids.insert(example.ids.end(), ids.begin(), ids.end());
    if (segment.trained) {
      example.labels.insert(example.labels.end(), ids.begin(), ids.end());
    } else {
      example.labels.insert(example.labels.end(), ids.size(), int32_t(train::kIgnoreLabel));
    }
  }
  return example;
}

}  // namespace ld::tune
