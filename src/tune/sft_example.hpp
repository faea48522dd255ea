#pragma once
// A conversation as token ids with a loss mask: the tokens of each assistant turn (its content and
// the end-of-turn marker after it, e.g. "<|im_end|>") are trained; everything else (system and user
// turns, the role headers, the generation prompt, text after the marker) gets label -100.
//
// Response spans are found by rendering prefixes: for assistant message i, the prompt is
// render(messages[:i], add_generation_prompt=true) and render(messages[:i+1]) must extend it; the
// extension is the response. Each render must extend the previous one, otherwise the template is
// inconsistent (it renders earlier turns differently once later ones exist, as Qwen3's does for
// multi-turn chats with its <think> blocks) and that is an error naming the template and the
// conversation.
//
// The text is tokenized segment by segment (prompt text, response, prompt text, ...), each segment
// on its own, as TRL's completion-only collator effectively does: a merge across a segment boundary
// never forms, so the ids can differ from tokenizing the whole text at once exactly there (rarely:
// boundaries sit next to special tokens in ChatML-like templates). Segments are encoded without the
// tokenizer's post-processor tokens; a template that wants a BOS writes {{ bos_token }}.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tune/chat_template.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::tune {

struct SftExample {
  std::vector<int32_t> ids;
  // Aligned with ids as in Hugging Face: labels[t] = ids[t] where token t is trained, -100 elsewhere.
  // Token t is predicted from the tokens before it (the loader shifts).
  std::vector<int32_t> labels;
};

// A rendered conversation as text pieces, each trained or not (consecutive pieces alternate).
struct TextSegment {
  std::string text;
  bool trained = false;
};

// `where` (e.g. "data.jsonl:12") prefixes errors.
std::vector<TextSegment> segment_conversation(const ChatTemplate& chat_template, std::span<const ChatMessage> messages,
                                              const std::string& where);

SftExample tokenize_conversation(const ChatTemplate& chat_template, const tok::Tokenizer& tokenizer,
                                 std::span<const ChatMessage> messages, const std::string& where);

}  // namespace ld::tune
