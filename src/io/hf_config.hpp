#pragma once
// A Hugging Face model folder's config.json (and generation_config.json) for the model kinds liandan
// runs. Reading validates every field it uses and maps it onto models::StackConfig; writing follows
// what transformers' LlamaConfig.save_pretrained writes, so `transformers` reads our folders.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "models/tiny_transformer.hpp"

namespace ld::io {

struct HfModelConfig {
  std::string model_type = "llama";
  models::StackConfig stack;
  // The output projection is the token embedding: the checkpoint then has no lm_head.weight.
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  std::string torch_dtype = "float32";
};

// The model types read_hf_config understands, comma-separated, for error messages.
std::string supported_model_types();

// Parses and validates `dir`/config.json (or the file itself when given one). Errors name the file
// and the field: missing, wrong type, inconsistent sizes, unsupported model_type.
HfModelConfig read_hf_config(const std::filesystem::path& dir_or_file);
HfModelConfig parse_hf_config(const nlohmann::json& json, const std::string& source);

nlohmann::json to_hf_config_json(const HfModelConfig& config);
nlohmann::json to_generation_config_json(const HfModelConfig& config);

// Writes config.json and generation_config.json into `dir` (each to a temporary name, then renamed).
void write_hf_config(const std::filesystem::path& dir, const HfModelConfig& config);

// With tied embeddings, adds lm_head.weight as the embedding itself (the same storage), which is
// what the stack's forward pass reads. Without, checks that lm_head.weight is there.
void tie_lm_head(models::Params& params, const HfModelConfig& config);

// Parameters the config implies (tied embeddings counted once), to check a checkpoint against.
int64_t expected_parameter_count(const HfModelConfig& config);

}  // namespace ld::io
