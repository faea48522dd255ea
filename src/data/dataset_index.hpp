#pragma once
// A prepared dataset folder: DIR/index.json lists the token shards of each split.
//
//   {"version": 1, "tokenizer": "...", "vocab_size": N, "eos_id": E, "token_width": 2 | 4,
//    "splits": {"train": [{"file": "train-00000.bin", "tokens": n, "documents": d}, ...],
//               "val": [...]}}
//
// `liandan data prepare` writes it (write_dataset_index) after the shards; the loader reads it.
// Shard files are named relative to DIR, and a split's shards, concatenated in the listed order,
// form that split's token stream (EOS already separates documents).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ld::data {

inline constexpr const char* kDatasetIndexFile = "index.json";
inline constexpr int kDatasetIndexVersion = 1;

struct ShardEntry {
  std::string file;  // relative to the dataset folder
  int64_t tokens = 0, documents = 0;
};

struct DatasetIndex {
  int version = kDatasetIndexVersion;
  std::string tokenizer;  // where the ids came from (a path or a name), for the record
  int64_t vocab_size = 0;
  int32_t eos_id = -1;
  int token_width = 2;
  std::map<std::string, std::vector<ShardEntry>> splits;
};

// DIR/index.json, checked: version, vocab_size > 0, eos_id inside the vocabulary, a token width of
// 2 or 4 that holds the vocabulary, shard entries with a plain relative file name and counts >= 0.
// Errors name the file. Shard files are not opened here (see check_shards_exist).
DatasetIndex read_dataset_index(const std::filesystem::path& dir);

// Writes DIR/index.json atomically after the same checks (a bad index is never written).
void write_dataset_index(const std::filesystem::path& dir, const DatasetIndex& index);

// The split's shards, or an error naming index.json and the splits it has.
const std::vector<ShardEntry>& split_shards(const DatasetIndex& index, const std::string& split,
                                            const std::filesystem::path& dir);

// Every shard of the split exists under DIR; the first missing one is named in the error.
void check_shards_exist(const DatasetIndex& index, const std::string& split, const std::filesystem::path& dir);

}  // namespace ld::data
