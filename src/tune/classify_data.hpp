#pragma once
// Classification data for task fine-tuning: JSONL records {"text": "...", "label": L}, L a string or
// an integer (an integer is looked up by its decimal form, so 3 and "3" are the same label).
//
// The label set comes from the config (a list, in the order given: label i is class i) or, when the
// config has none, from the training file: its distinct labels sorted (numerically when all are
// integers, else as strings), so the same file always gives the same class ids. A record whose label
// is outside the set is an error naming file:line, raised while reading, before training starts.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ld::tune {

struct ClassifyExample {
  std::string text;
  int64_t label = 0;   // index into the label set
  std::string source;  // "file:line"
};

struct ClassifyData {
  std::vector<std::string> label_set;
  std::vector<ClassifyExample> examples;
};

// The sorted distinct labels of a file (see above). Errors name file:line.
std::vector<std::string> label_set_from_file(const std::filesystem::path& file);

// Reads every record, mapping labels through `label_set` (non-empty, no duplicates).
ClassifyData read_classify_jsonl(const std::filesystem::path& file, const std::vector<std::string>& label_set);

}  // namespace ld::tune
