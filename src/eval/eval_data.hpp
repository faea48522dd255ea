#pragma once
// The data files `liandan eval` reads, parsed into items. Every problem is one error naming the
// file and, for JSONL, the 1-based line: malformed JSON, a missing or mistyped field, a gold index
// out of range, a file without items.
//
//   ppl       a .txt file (the whole file is one document) or JSONL {"text": ...} (one document a line)
//   choice    JSONL {"query" or "context": str, "choices": [str, ...], "gold": int}
//   generate  JSONL {"prompt": str, "reference": str} or {"prompt": str, "references": [str, ...]}
//   classify  JSONL {"text": str, "label": str (or a number, read as its JSON text)}
//
// Blank lines in JSONL are skipped.
#include <cstdint>
#include <string>
#include <vector>

namespace ld::eval {

struct ChoiceItem {
  std::string query;
  std::vector<std::string> choices;
  int64_t gold = 0;
};

struct GenerateItem {
  std::string prompt;
  std::vector<std::string> references;
};

struct ClassifyItem {
  std::string text, label;
};

std::vector<std::string> read_documents(const std::string& path);
std::vector<ChoiceItem> read_choice_items(const std::string& path);
std::vector<GenerateItem> read_generate_items(const std::string& path);
std::vector<ClassifyItem> read_classify_items(const std::string& path);

}  // namespace ld::eval
