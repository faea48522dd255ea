#include "tune/classify_data.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.hpp"
#include "tune/jsonl_records.hpp"

namespace ld::tune {

namespace {

struct RawLabel {
  std::string text;
  bool is_integer = false;
};

RawLabel read_label(const nlohmann::json& record, const std::string& where) {
  const auto found = record.find("label");
  LD_CHECK(found != record.end(), where, ": missing key \"label\"");
  if (found->is_string()) return {found->get<std::string>(), false};
  LD_CHECK(found->is_number_integer(), where, ": \"label\" must be a string or an integer, got ", found->dump());
  return {std::to_string(found->get<int64_t>()), true};
}

}  // namespace

std::vector<std::string> label_set_from_file(const std::filesystem::path& file) {
  std::set<std::string> seen;
  bool all_integers = true;
  for_each_jsonl_record(file, [&](const nlohmann::json& record, const std::string& where) {
    const RawLabel label = read_label(record, where);
    all_integers = all_integers && label.is_integer;
    seen.insert(label.text);
  });
  LD_CHECK(!seen.empty(), file.string(), ": no records, so no label set");
  std::vector<std::string> labels(seen.begin(), seen.end());
  if (all_integers) {
    std::sort(labels.begin(), labels.end(),
              [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  }
  return labels;
}

ClassifyData read_classify_jsonl(const std::filesystem::path& file, const std::vector<std::string>& label_set) {
  LD_CHECK(!label_set.empty(), file.string(), ": the label set is empty");
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < label_set.size(); ++i)
    LD_CHECK(index.emplace(label_set[i], int64_t(i)).second, "label set: '", label_set[i], "' is listed twice");
  ClassifyData data{label_set, {}};
  for_each_jsonl_record(file, [&](const nlohmann::json& record, const std::string& where) {
    const std::string text = string_field(record, "text", where);
    const RawLabel label = read_label(record, where);
    const auto found = index.find(label.text);
    LD_CHECK(found != index.end(), where, ": label '", label.text, "' is not in the label set (",
             label_set.size(), " labels, e.g. '", label_set.front(), "')");
    data.examples.push_back({text, found->second, where});
  });
  return data;
}

}  // namespace ld::tune
