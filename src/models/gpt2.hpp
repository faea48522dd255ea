#pragma once
// GPT-2 (GPT2LMHeadModel) as an nn::Module tree with Hugging Face's names and layouts.
#include "models/causal_lm.hpp"

namespace ld::models {

class Gpt2LMHeadModel : public CausalLM {
 public:
  Gpt2LMHeadModel(const io::HfModelConfig& config, Generator& gen);
  LmOutput run(const LmInputs& inputs) const override;
};

}  // namespace ld::models
