#pragma once
// `liandan data prepare`: corpora -> cleaned, deduplicated, tokenized token shards + index + report.
//
//   inputs --read (readers.hpp, one file after another)--> batches of documents
//          --clean (filters.hpp) + fingerprint (dedup.hpp), in parallel-->
//          --dedup, in input order--> --tokenize, in parallel--> --shards, in input order-->
//
// Output does not depend on the thread count: every parallel step writes into its document's slot
// and the ordered steps walk the batch front to back. Each kept document goes to "val" when a seeded
// hash of its cleaned text falls below val_fraction (deterministic, independent of position) and to
// "train" otherwise; its ids are followed by the EOS id. A shard is closed before it would exceed
// shard_tokens (a longer document gets a shard of its own). The output folder appears whole or not at
// all (write_folder_atomically): DIR/train-00000.bin..., DIR/val-00000.bin..., DIR/index.json
// (dataset_index.hpp), DIR/report.json.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/dedup.hpp"
#include "data/filters.hpp"
#include "data/readers.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::data {

struct PrepareProgress {
  int64_t documents = 0;
  uint64_t bytes = 0;
  double seconds = 0;
};

struct PrepareOptions {
  bool skip_bad_lines = false;  // JSONL lines that cannot be read are counted and skipped
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path tokenizer;
  std::filesystem::path out;
  bool force = false;
  ReaderOptions reader;
  FilterOptions filters;
  DedupOptions dedup;
  double val_fraction = 0.005;
  uint64_t split_seed = 0;
  int64_t shard_tokens = 100'000'000;
  std::optional<int32_t> eos_id;  // default: the tokenizer's end-of-text token
  int threads = 0;                // 0 = all cores
  int64_t batch_documents = 4096;
  std::function<void(const PrepareProgress&)> progress;  // after each batch
};

struct SplitStats {
  int64_t documents = 0, tokens = 0, shards = 0;
};

struct PrepareReport {
  int64_t files = 0, documents_read = 0;
  int64_t bad_lines_skipped = 0;
  uint64_t bytes_read = 0;
  FilterCounts filters;
  int64_t duplicates = 0;  // removed by dedup (after filtering)
  std::string dedup_mode;
  int minhash_bands = 0, minhash_rows = 0;
  size_t dedup_memory_bytes = 0;
  std::map<std::string, SplitStats> splits;
  int32_t eos_id = -1;
  int64_t vocab_size = 0;
  int token_width = 2;
  double seconds = 0;
};

// The end-of-text id of a tokenizer: "<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>" or
// "<|im_end|>", the first it has; nullopt when it has none.
std::optional<int32_t> find_eos_id(const tok::Tokenizer& tokenizer);

PrepareReport prepare_dataset(const PrepareOptions& options);

nlohmann::json report_to_json(const PrepareReport& report);
std::string report_table(const PrepareReport& report);  // for stdout

}  // namespace ld::data
