#pragma once
// Splits named parameters into AdamW groups by the usual pretraining convention (Hugging Face
// Trainer, nanoGPT's configure_optimizers): weight matrices get decoupled weight decay; norms, biases
// and embeddings do not. A parameter is "no decay" when
//   - it has fewer than 2 dimensions (biases, LayerNorm/RMSNorm weights, scalars), or
//   - its Hugging Face name matches one of `no_decay_patterns` (globs, '*' matches any run of
//     characters, dots included; see nn::glob_match). The defaults recognise embeddings by name:
//     "*embed*", "*wte*", "*wpe*", "*word_embeddings*", "*position_embeddings*",
//     "*token_type_embeddings*" (GPT-2 transformer.wte/wpe, LLaMA model.embed_tokens, BERT
//     embeddings.*). A tensor shared under several names (a tied lm_head.weight is the embedding) is
//     grouped once, and is not decayed when any of its names says so.
// Frozen parameters (requires_grad false) are left out unless include_frozen is set.
#include <string>
#include <utility>
#include <vector>

#include "train/adamw.hpp"

namespace ld::train {

struct ParamGroupOptions {
  float weight_decay = 0.1f;
  std::vector<std::string> no_decay_patterns = {"*embed*",           "*wte*",
                                                "*wpe*",             "*word_embeddings*",
                                                "*position_embeddings*", "*token_type_embeddings*"};
  bool include_frozen = false;
};

// True when the parameter gets weight decay under `options`.
bool decays(const std::string& name, const Tensor& param, const ParamGroupOptions& options);

// Two groups, in this order: {decayed, weight_decay} and {not decayed, 0}. Each tensor appears once
// (shared tensors such as tied embeddings are deduplicated by identity).
std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named_params,
                                          const ParamGroupOptions& options = {});

}  // namespace ld::train
