#pragma once
// The model a fine-tuning run trains: a causal LM loaded from model.from (a Hugging Face folder, or a
// liandan run's model/ or checkpoint) and, by finetune.method, what is trained of it:
//   full     every weight; saved as a Hugging Face folder (tokenizer files of the base included)
//   lora     LoRA updates on lora.target_modules (peft/lora.hpp); saved in PEFT's layout
//   adapter  Houlsby adapters after each attention and MLP (peft/adapter.hpp); saved as LIANDAN_ADAPTER
//   prompt   a soft prompt of prompt_tuning.num_virtual_tokens (peft/prompt_tuning.hpp); PEFT's layout
// Resuming builds the same thing from a checkpoint: its full weights, or the base plus its adapter.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/causal_lm.hpp"
#include "peft/adapter.hpp"
#include "peft/lora.hpp"
#include "peft/prompt_tuning.hpp"
#include "train/run_config.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::tune {

struct TunedModel {
  std::string method;  // full | lora | adapter | prompt
  std::unique_ptr<models::CausalLM> lm;
  peft::LoraModel lora;         // method lora
  peft::AdapterModel adapter;   // method adapter
  peft::PromptTuning prompt;    // method prompt
  std::filesystem::path base;   // model.from

  // What the optimizer updates, by name (frozen base tensors are left out by it).
  std::vector<std::pair<std::string, Tensor>> trainable_parameters() const;
  int64_t trainable_count() const;
  int64_t total_count() const;  // base + what the method adds
  // The method's output in `dir`: the full folder, or the adapter folder alone.
  void save(const std::filesystem::path& dir, bool force) const;
};

// `checkpoint` ("" = fresh) is a fine-tuning checkpoint of the same method. `tokenizer` encodes
// prompt_tuning.init_text.
TunedModel load_tuned_model(const train::RunConfig& config, const std::filesystem::path& checkpoint,
                            const tok::Tokenizer* tokenizer);

}  // namespace ld::tune
