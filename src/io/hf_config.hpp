#pragma once
// A Hugging Face model folder's config.json (and generation_config.json) for the model types liandan
// runs: gpt2, llama, mistral, qwen2, mixtral, bert. Reading validates every field it uses (errors name
// the file and the field) and refuses features liandan does not compute rather than run a different
// model; writing follows what transformers' XxxConfig.save_pretrained writes, so `transformers` reads
// our folders.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/tiny_transformer.hpp"
#include "nn/moe.hpp"

namespace ld::io {

struct HfModelConfig {
  std::string model_type = "llama";  // gpt2 | llama | mistral | qwen2 | mixtral | bert
  // architectures[0]: LlamaForCausalLM, GPT2LMHeadModel, BertForMaskedLM,
  // BertForSequenceClassification, ... Defaults to the model type's causal LM (BertForMaskedLM).
  std::string architecture;
  // Sizes. kind is gpt2 for gpt2 and bert (learned positions, LayerNorm, GELU MLP of
  // intermediate_size), llama for the LLaMA family. n_positions is n_positions (GPT-2) or
  // max_position_embeddings.
  models::StackConfig stack;
  bool attention_bias = false;     // q/k/v projections with biases (Qwen2 always; LLaMA's attention_bias)
  int64_t sliding_window = 0;      // Mistral / Qwen2 (use_sliding_window): keys at most this far back; 0 = off
  nn::MoeConfig moe;               // mixtral, or a gpt2 with num_local_experts (liandan's MoE GPT-2)
  std::string hidden_act;          // gpt2: gelu_new; bert: gelu; llama family: silu
  int64_t type_vocab_size = 2;     // bert
  int64_t num_labels = 2;          // BertForSequenceClassification (and later classification heads)
  // The output projection is the token embedding: the checkpoint then has no separate weight for it.
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  // Every id that ends generation: config.json's eos_token_id list, or generation_config.json's when
  // the folder has one (LLaMA 3 Instruct stops on 128001 and 128009). eos_token_id is the first.
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = -1;  // -1: none
  std::string torch_dtype = "float32";

  bool is_causal_lm() const { return model_type != "bert"; }
};

// A GPT-2 or LLaMA config for a stack built in code (tests, the demo, imports), with that model
// type's defaults for everything the stack does not say.
HfModelConfig make_hf_config(const models::StackConfig& stack, bool tie_word_embeddings);

// The model types read_hf_config understands, comma-separated, for error messages.
std::string supported_model_types();

// Parses and validates `dir`/config.json (or the file itself when given one). Errors name the file
// and the field: missing, wrong type, inconsistent sizes, unsupported model_type or feature.
HfModelConfig read_hf_config(const std::filesystem::path& dir_or_file);
HfModelConfig parse_hf_config(const nlohmann::json& json, const std::string& source);

nlohmann::json to_hf_config_json(const HfModelConfig& config);
nlohmann::json to_generation_config_json(const HfModelConfig& config);

// Writes config.json and generation_config.json into `dir` (each to a temporary name, then renamed).
void write_hf_config(const std::filesystem::path& dir, const HfModelConfig& config);

// For the functional LLaMA stack: with tied embeddings, adds lm_head.weight as the embedding itself
// (the same storage). Without, checks that lm_head.weight is there.
void tie_lm_head(models::Params& params, const HfModelConfig& config);

// Parameters the config implies (tied embeddings counted once), to check a checkpoint against
// without building the model.
int64_t expected_parameter_count(const HfModelConfig& config);

}  // namespace ld::io
