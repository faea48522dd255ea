#pragma once
// Adapter folders in Hugging Face PEFT's layout: adapter_config.json and adapter_model.safetensors
// holding only the adapter's tensors, under PEFT's names, so that peft.PeftModel.from_pretrained
// reads what liandan writes and the other way round.
//   LORA           "base_model.model.<module>.lora_A.weight" [r, in], ".lora_B.weight" [out, r];
//                  config: r, lora_alpha, lora_dropout, target_modules, use_rslora, fan_in_fan_out
//                  (true for GPT-2's Conv1D), bias "none", ...
//   PROMPT_TUNING  "prompt_embeddings" [N, C]; config: num_virtual_tokens, token_dim,
//                  num_transformer_submodules 1, num_attention_heads, num_layers, prompt_tuning_init
//                  RANDOM | TEXT, prompt_tuning_init_text
//   LIANDAN_ADAPTER  (ours; PEFT has no Houlsby adapter) "base_model.model.<module>.adapter_down.weight"
//                  [width, C], ".adapter_down.bias", ".adapter_up.weight" [C, width], ".adapter_up.bias";
//                  config: width, nonlinearity, target_modules (full module names)
// Folders are written whole or not at all (core/atomic_file.hpp).
#include <filesystem>
#include <string>

#include "models/causal_lm.hpp"
#include "peft/adapter.hpp"
#include "peft/lora.hpp"
#include "peft/prompt_tuning.hpp"

namespace ld::peft {

struct SaveOptions {
  std::string base_model_name_or_path{};  // recorded in adapter_config.json; empty = null
  bool force = false;                   // replace an existing non-empty folder
};

void save_lora(const LoraModel& lora, const std::filesystem::path& dir, const SaveOptions& options = {});
void save_prompt_tuning(const PromptTuning& prompt, const std::filesystem::path& dir, const SaveOptions& options = {});
void save_houlsby(const AdapterModel& adapters, const std::filesystem::path& dir, const SaveOptions& options = {});

// Merges `lora` into the base weights and writes the base model alone as a Hugging Face folder
// (models::save_pretrained: config.json, model.safetensors, tokenizer files of tokenizer_from), which
// loads with no adapter. The model stays merged. Other adapters still attached (a Houlsby adapter
// cannot be merged) are an error, before anything changes.
void save_merged_model(models::CausalLM& model, LoraModel& lora, const std::filesystem::path& dir, bool force = false,
                       const std::filesystem::path& tokenizer_from = {});

// What load_adapter attached: peft_type says which member is filled.
struct LoadedAdapter {
  std::string peft_type;  // "LORA", "PROMPT_TUNING" or "LIANDAN_ADAPTER"
  LoraModel lora;
  PromptTuning prompt;
  AdapterModel adapter;
};

// Reads dir's adapter_config.json and adapter_model.safetensors, attaches the adapter to `model`
// (freezing the base) and loads its tensors. Errors name the file and key: missing files or
// fields, an unsupported peft_type or option, keys naming modules the model lacks, wrong shapes,
// missing tensors.
LoadedAdapter load_adapter(models::CausalLM& model, const std::filesystem::path& dir);

}  // namespace ld::peft
