#include "tune/sft_data.hpp"

#include <optional>

#include "core/error.hpp"
#include "train/objectives.hpp"
#include "tune/jsonl_records.hpp"

namespace ld::tune {

Conversation alpaca_conversation(const std::string& instruction, const std::string& input, const std::string& output) {
  Conversation c;
  c.messages.push_back({"user", input.empty() ? instruction : instruction + "\n\n" + input});
  c.messages.push_back({"assistant", output});
  return c;
}

namespace {

enum class SftFormat { chat, alpaca };

SftFormat detect_format(const nlohmann::json& record, const std::string& where) {
  if (record.contains("messages")) return SftFormat::chat;
  if (record.contains("instruction") || record.contains("output")) return SftFormat::alpaca;
  LD_FAIL(where, ": not an instruction record: expected \"messages\" (chat) or \"instruction\" and \"output\" "
          "(Alpaca)");
}

Conversation read_alpaca(const nlohmann::json& record, const std::string& where) {
  const std::string instruction = string_field(record, "instruction", where);
  const std::string input = record.contains("input") ? string_field(record, "input", where) : "";
  return alpaca_conversation(instruction, input, string_field(record, "output", where));
}

Conversation read_chat(const nlohmann::json& record, const std::string& where) {
  LD_CHECK(record.contains("messages"), where, ": missing key \"messages\" (this file is chat JSONL: its first "
           "record has \"messages\")");
  const nlohmann::json& messages = record["messages"];
  LD_CHECK(messages.is_array(), where, ": \"messages\" must be a list, got ", messages.type_name());
  LD_CHECK(!messages.empty(), where, ": empty conversation (\"messages\" is an empty list)");
  Conversation c;
  bool has_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string at = where + ": message " + std::to_string(i + 1);
    LD_CHECK(messages[i].is_object(), at, ": expected an object with \"role\" and \"content\"");
    ChatMessage m{string_field(messages[i], "role", at), string_field(messages[i], "content", at)};
    check_role(m.role, at);
    has_assistant = has_assistant || m.role == "assistant";
    c.messages.push_back(std::move(m));
  }
  LD_CHECK(has_assistant, where, ": the conversation has no assistant turn, so nothing would be trained");
  return c;
}

}  // namespace

std::vector<Conversation> read_sft_jsonl(const std::filesystem::path& file) {
  std::vector<Conversation> out;
  std::optional<SftFormat> format;
  for_each_jsonl_record(file, [&](const nlohmann::json& record, const std::string& where) {
    if (!format) format = detect_format(record, where);
    Conversation c = *format == SftFormat::chat ? read_chat(record, where) : read_alpaca(record, where);
    c.source = where;
    out.push_back(std::move(c));
  });
  return out;
}

std::string SftDataset::warning() const {
  if (dropped == 0) return "";
  return std::to_string(dropped) + " instruction example(s) dropped: all their response tokens lay beyond seq_len " +
         "(examples are cut at seq_len from the right)";
}

namespace {

// Labels that can be scored: position 0 has no token before it to predict from.
bool has_scored_label(const SftExample& e) {
  for (size_t t = 1; t < e.labels.size(); ++t)
    if (e.labels[t] != int32_t(train::kIgnoreLabel)) return true;
  return false;
}

}  // namespace

SftDataset build_sft_dataset(const std::vector<Conversation>& conversations, const ChatTemplate& chat_template,
                             const tok::Tokenizer& tokenizer, int64_t seq_len) {
  LD_CHECK(seq_len >= 2, "instruction data: seq_len must be at least 2, got ", seq_len);
  SftDataset dataset;
  for (const Conversation& c : conversations) {
    SftExample e = tokenize_conversation(chat_template, tokenizer, c.messages, c.source);
    if (int64_t(e.ids.size()) > seq_len) {
      e.ids.resize(size_t(seq_len));
      e.labels.resize(size_t(seq_len));
      ++dataset.truncated;
    }
    if (!has_scored_label(e)) {
      ++dataset.dropped;
      continue;
    }
    dataset.examples.push_back(std::move(e));
  }
  return dataset;
}

}  // namespace ld::tune
