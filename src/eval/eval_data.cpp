#include "eval/eval_data.hpp"

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace ld::eval {

namespace {

using nlohmann::json;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path, ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool blank(const std::string& text) { return text.find_first_not_of(" \t\r\n") == std::string::npos; }

// Calls parse(object, "file:line") for each non-blank line, which must be a JSON object.
void for_each_jsonl(const std::string& path, const char* expected,
                    const std::function<void(const json&, const std::string&)>& parse) {
  std::istringstream lines(read_all(path));
  std::string line;
  size_t items = 0;
  for (size_t number = 1; std::getline(lines, line); ++number) {
    if (blank(line)) continue;
    const std::string where = path + ":" + std::to_string(number);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      LD_FAIL(where, ": not valid JSON (", e.what(), ")");
    }
    LD_CHECK(j.is_object(), where, ": expected a JSON object like ", expected, ", got ", j.type_name());
    parse(j, where);
    ++items;
  }
  LD_CHECK(items > 0, path, ": no items (the file is empty; expected JSON lines like ", expected, ")");
}

const json& field(const json& j, const std::string& where, const char* key, const char* expected) {
  LD_CHECK(j.contains(key), where, ": missing field \"", key, "\" (expected ", expected, ")");
  return j[key];
}

std::string string_field(const json& j, const std::string& where, const char* key, const char* expected) {
  const json& v = field(j, where, key, expected);
  LD_CHECK(v.is_string(), where, ": field \"", key, "\" must be a string, got ", v.type_name());
  return v.get<std::string>();
}

std::vector<std::string> string_list(const json& j, const std::string& where, const char* key, const char* expected) {
  const json& v = field(j, where, key, expected);
  LD_CHECK(v.is_array() && !v.empty(), where, ": field \"", key, "\" must be a non-empty array of strings");
  std::vector<std::string> out;
  for (const json& s : v) {
    LD_CHECK(s.is_string(), where, ": field \"", key, "\" must hold strings, got ", s.type_name());
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

std::vector<std::string> read_documents(const std::string& path) {
  const bool jsonl = path.ends_with(".jsonl") || path.ends_with(".json");
  if (!jsonl) {
    std::string text = read_all(path);
    LD_CHECK(!blank(text), path, ": the file is empty (expected text, or JSON lines {\"text\": ...})");
    return {std::move(text)};
  }
  const char* expected = "{\"text\": \"...\"}";
  std::vector<std::string> docs;
  for_each_jsonl(path, expected, [&](const json& j, const std::string& where) {
    docs.push_back(string_field(j, where, "text", expected));
  });
  return docs;
}

std::vector<ChoiceItem> read_choice_items(const std::string& path) {
  const char* expected = "{\"query\": \"...\", \"choices\": [\"...\", ...], \"gold\": 0}";
  std::vector<ChoiceItem> items;
  for_each_jsonl(path, expected, [&](const json& j, const std::string& where) {
    ChoiceItem item;
    item.query = string_field(j, where, j.contains("query") || !j.contains("context") ? "query" : "context", expected);
    item.choices = string_list(j, where, "choices", expected);
    for (size_t c = 0; c < item.choices.size(); ++c)  // acc_norm divides by the length
      LD_CHECK(!item.choices[c].empty(), where, ": choice ", c, " is empty");
    const json& gold = field(j, where, "gold", expected);
    LD_CHECK(gold.is_number_integer(), where, ": field \"gold\" must be an integer index into \"choices\", got ",
             gold.dump());
    item.gold = gold.get<int64_t>();
    LD_CHECK(item.gold >= 0 && item.gold < int64_t(item.choices.size()), where, ": gold index ", item.gold,
             " is out of range (", item.choices.size(), " choices: 0..", item.choices.size() - 1, ")");
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<GenerateItem> read_generate_items(const std::string& path) {
  const char* expected =
      "{\"prompt\": \"...\", \"reference\": \"...\"} or {\"prompt\": \"...\", \"references\": [...]}";
  std::vector<GenerateItem> items;
  for_each_jsonl(path, expected, [&](const json& j, const std::string& where) {
    GenerateItem item;
    item.prompt = string_field(j, where, "prompt", expected);
    LD_CHECK(!(j.contains("reference") && j.contains("references")), where,
             ": give one of \"reference\" and \"references\", not both");
    if (j.contains("references"))
      item.references = string_list(j, where, "references", expected);
    else
      item.references = {string_field(j, where, "reference", expected)};
    bool any = false;
    for (const std::string& r : item.references) any = any || !r.empty();
    LD_CHECK(any, where, ": every reference is empty (BLEU needs a non-empty one)");
    items.push_back(std::move(item));
  });
  return items;
}

std::vector<ClassifyItem> read_classify_items(const std::string& path) {
  const char* expected = "{\"text\": \"...\", \"label\": \"...\"}";
  std::vector<ClassifyItem> items;
  for_each_jsonl(path, expected, [&](const json& j, const std::string& where) {
    ClassifyItem item;
    item.text = string_field(j, where, "text", expected);
    const json& label = field(j, where, "label", expected);
    LD_CHECK(label.is_string() || label.is_number_integer() || label.is_boolean(), where,
             ": field \"label\" must be a string (or an integer), got ", label.type_name());
    item.label = label.is_string() ? label.get<std::string>() : label.dump();
    items.push_back(std::move(item));
  });
  return items;
}

}  // namespace ld::eval
