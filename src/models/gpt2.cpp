#include "models/gpt2.hpp"

#include "core/error.hpp"

namespace ld::models {

Gpt2LMHeadModel::Gpt2LMHeadModel(const io::HfModelConfig& config, Generator&) : CausalLM(config) {
  LD_FAIL("GPT-2 is not built yet");
}

LmOutput Gpt2LMHeadModel::run(const LmInputs&) const { LD_FAIL("GPT-2 is not built yet"); }

}  // namespace ld::models
