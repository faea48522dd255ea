#pragma once
// Corpus readers for `liandan data prepare`: plain text, JSONL and Debian fortune files, each
// optionally .gz or .zst compressed, and folders of them. Documents are streamed one at a time, so a
// corpus never has to fit in memory.
//
//   text     a document per blank-line-separated block (or per line with doc_per_line)
//   jsonl    a document per line: the string field `text_field` of a JSON object
//   fortune  documents separated by lines holding only "%" (fortune(6) data files)
//   auto     by name: *.jsonl / *.json (before .gz/.zst) -> jsonl; a file with a sibling NAME.dat
//            (fortune's index) -> fortune; otherwise text
// Folders are walked recursively in sorted order; fortune .dat index files are skipped, and a file
// reached twice (fortune's NAME.u8 symlinks) is read once.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace ld::data {

enum class InputFormat { automatic, text, jsonl, fortune };
InputFormat parse_input_format(const std::string& name);  // "auto", "text", "jsonl", "fortune"

struct ReaderOptions {
  InputFormat format = InputFormat::automatic;
  std::string text_field = "text";
  bool doc_per_line = false;  // text files: one document per line instead of per block
  // JSONL: with a handler, a bad line (malformed JSON, no or non-string text field) is passed to it
  // ("file:line: what is wrong") and skipped; without one it is an error.
  std::function<void(const std::string&)> on_bad_line;
};

struct Document {
  std::string text;
  std::string source;  // "file:line" of the document's first line, for messages
};

// The files `inputs` name (folders expanded), in the order they will be read. Errors name a path
// that does not exist.
std::vector<std::filesystem::path> list_input_files(const std::vector<std::filesystem::path>& inputs);

// Reads every document of `file`; returns the bytes read (uncompressed). Errors name file:line
// (malformed JSON, a missing or non-string text field) or the file (unreadable, bad compression).
uint64_t read_documents(const std::filesystem::path& file, const ReaderOptions& options,
                        const std::function<void(Document&&)>& on_document);

}  // namespace ld::data
