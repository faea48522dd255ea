#include "tune/jsonl_records.hpp"

#include <fstream>

#include "core/error.hpp"

namespace ld::tune {

void for_each_jsonl_record(const std::filesystem::path& file,
                           const std::function<void(const nlohmann::json&, const std::string&)>& on_record) {
  std::ifstream in(file);
  LD_CHECK(in.good(), file.string(), ": cannot open for reading");
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = file.string() + ":" + std::to_string(number);
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      LD_FAIL(where, ": malformed JSON (", e.what(), ")");
    }
    LD_CHECK(record.is_object(), where, ": expected a JSON object, got ", record.type_name());
    on_record(record, where);
  }
  LD_CHECK(!in.bad(), file.string(), ": read error");
}

std::string string_field(const nlohmann::json& record, const std::string& key, const std::string& where) {
  const auto found = record.find(key);
  LD_CHECK(found != record.end(), where, ": missing key \"", key, "\"");
  LD_CHECK(found->is_string(), where, ": \"", key, "\" must be a string, got ", found->type_name());
  return found->get<std::string>();
}

}  // namespace ld::tune
