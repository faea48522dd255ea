#pragma once
// What the trainer tests share: a tiny prepared dataset with a learnable pattern, tiny GPT-2 and
// LLaMA configs, a run configuration around them, quiet options and metrics.jsonl reading.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"

namespace ld::train::fixture {

namespace fs = std::filesystem;

inline constexpr int32_t kVocab = 16;
inline constexpr int32_t kEos = 15;

// Counting: documents that count upwards modulo 10 from a varying start, so every token but the
// first of a document is predictable from the one before it (for causal LMs). Repeating: each
// document repeats one token, so a masked token is any visible one of its document (for BERT).
enum class Pattern { counting, repeating };

inline void write_split(const fs::path& dir, const std::string& split, int documents, int first_start,
                 data::DatasetIndex& index, Pattern pattern) {
  const std::string file = split + "-00000.bin";
  data::ShardWriter writer(dir / file, 2);
  for (int d = 0; d < documents; ++d) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((first_start + d * 3 + (pattern == Pattern::counting ? i : 0)) % 10);
    writer.append_document(ids, kEos);
  }
  writer.finish();
  index.splits[split] = {{file, writer.tokens(), writer.documents()}};
}

inline fs::path make_dataset(const fs::path& dir, Pattern pattern = Pattern::counting) {
  fs::create_directories(dir);
  data::DatasetIndex index;
  index.tokenizer = "counting";
  index.vocab_size = kVocab;
  index.eos_id = kEos;
  index.token_width = 2;
  write_split(dir, "train", 24, 0, index, pattern);
  write_split(dir, "val", 4, 1, index, pattern);
  data::write_dataset_index(dir, index);
  return dir;
}

inline const char* const kGpt2Model = R"(
model:
  type: gpt2
  n_layer: 2
  n_head: 2
  n_embd: 32
  vocab_size: 16
  n_positions: 32
)";

inline const char* const kLlamaModel = R"(
model:
  type: llama
  num_hidden_layers: 2
  num_attention_heads: 4
  num_key_value_heads: 2
  hidden_size: 32
  intermediate_size: 64
  vocab_size: 16
  max_position_embeddings: 32
)";

inline RunConfig make_config(const char* model_yaml, const fs::path& data, const fs::path& run,
                      std::vector<Override> overrides) {
  const std::string yaml = std::string(model_yaml) + "data:\n  path: " + data.string() + R"(
train:
  batch_size: 4
  seq_len: 16
  max_steps: 30
  lr: 1e-2
  warmup_steps: 3
  weight_decay: 0.0
  threads: 1
eval:
  every: 10
  batches: 4
checkpoint:
  every: 10
  keep_last: 2
log:
  every: 10
output_dir: )" + run.string() + "\n";
  return parse_run_config(yaml, "test.yaml", overrides);
}

inline TrainOptions quiet() {
  TrainOptions o;
  o.print = false;
  return o;
}

inline std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

}  // namespace ld::train::fixture
