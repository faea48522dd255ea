#pragma once
// JSON Lines input for the fine-tuning readers: one JSON object per line, blank lines skipped.
// Errors name file:line (unreadable file, malformed JSON, a line that is not an object).
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

namespace ld::tune {

// Calls on_record(object, "file:line") for each non-blank line, in order.
void for_each_jsonl_record(const std::filesystem::path& file,
                           const std::function<void(const nlohmann::json&, const std::string&)>& on_record);

// The string field `key` of a record; missing or not a string is an error naming `where` and key.
std::string string_field(const nlohmann::json& record, const std::string& key, const std::string& where);

}  // namespace ld::tune
