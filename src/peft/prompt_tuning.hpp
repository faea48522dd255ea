#pragma once
// Prompt Tuning (Lester et al. 2021) as Hugging Face PEFT does it: N learned virtual-token embeddings
// [N, C] placed before every sequence's token embeddings; the whole model stays frozen. Initialised
// randomly (PEFT's nn.Embedding: N(0, 1)) or from the token embeddings of a text, its ids repeated
// or cut to N (PEFT's TEXT init). The model uses the prompt through CausalLM::set_prompt, so
// training, evaluation and generation run unchanged and see [B, T, V] logits.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "models/causal_lm.hpp"
#include "nn/module.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::peft {

struct PromptTuningConfig {
  int64_t num_virtual_tokens = 20;
  enum class Init { random, text } init = Init::random;
  std::string init_text{};  // Init::text: kept for adapter_config.json (prompt_tuning_init_text)

  void validate() const;
};

// The trainable table, one parameter "embedding.weight" [N, C] (PEFT's prompt_encoder layout).
class PromptEmbedding : public nn::Module {
 public:
  PromptEmbedding(int64_t num_virtual_tokens, int64_t dim, Generator& gen);
  Tensor weight;  // [N, C]
};

struct PromptTuning {
  PromptTuningConfig config;
  std::shared_ptr<PromptEmbedding> prompt;
  // What adapter_config.json records about the model (PEFT's PromptLearningConfig).
  int64_t token_dim = 0, num_attention_heads = 0, num_layers = 0;
};

// Freezes `model`, builds the prompt and makes it the model's prefix (set_prompt). Init::text needs
// the text's token ids (init_ids, at least one, each inside the vocabulary).
PromptTuning apply_prompt_tuning(models::CausalLM& model, const PromptTuningConfig& config, Generator& gen,
                                 const std::vector<int64_t>& init_ids = {});
// Init::text with config.init_text encoded by `tokenizer` (no special tokens).
PromptTuning apply_prompt_tuning(models::CausalLM& model, const PromptTuningConfig& config, Generator& gen,
                                 const tok::Tokenizer& tokenizer);

// The token-embedding table of a causal LM (GPT-2's transformer.wte, the LLaMA family's
// model.embed_tokens), [V, C].
Tensor input_embeddings(const models::CausalLM& model);

}  // namespace ld::peft
