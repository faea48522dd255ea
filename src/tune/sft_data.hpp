#pragma once
// Instruction (SFT) data: Alpaca JSONL and chat JSONL, tokenized with a chat template and a loss mask
// (tune/sft_example.hpp).
//
// Formats, detected per file from the keys of its first record (every record must then follow it):
//   chat    {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//   alpaca  {"instruction": "...", "input": "..." (optional), "output": "..."}: a user message
//           (instruction, plus "\n\n" + input when input is non-empty) and an assistant message.
// Errors name file:line: malformed JSON, missing keys, an unknown role, an empty conversation, a
// conversation without an assistant turn.
//
// Truncation policy: an example longer than seq_len tokens keeps its first seq_len tokens (cut from
// the right). An example left with no trained token that can be scored (labels at positions >= 1:
// position 0 has nothing before it) is dropped and counted in SftDataset::dropped; the caller reports
// the count as a warning. Truncated examples are counted too.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tune/chat_template.hpp"
#include "tune/sft_example.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::tune {

struct Conversation {
  std::vector<ChatMessage> messages;
  std::string source;  // "file:line"
};

Conversation alpaca_conversation(const std::string& instruction, const std::string& input, const std::string& output);

// Every record of one Alpaca or chat JSONL file, validated (see the top of this file).
std::vector<Conversation> read_sft_jsonl(const std::filesystem::path& file);

struct SftDataset {
  std::vector<SftExample> examples;
  int64_t truncated = 0;  // examples cut at seq_len (kept)
  int64_t dropped = 0;    // examples whose trained tokens were all cut (not kept)
  // "" when nothing was dropped, else a one-line warning with the count and the policy.
  std::string warning() const;
};

// Tokenizes the conversations and applies the truncation policy; seq_len >= 2.
SftDataset build_sft_dataset(const std::vector<Conversation>& conversations, const ChatTemplate& chat_template,
                             const tok::Tokenizer& tokenizer, int64_t seq_len);

}  // namespace ld::tune
