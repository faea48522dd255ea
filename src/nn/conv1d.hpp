#pragma once
// Hugging Face's Conv1D (transformers.pytorch_utils.Conv1D), GPT-2's projection layer: a linear layer
// whose weight is stored transposed, [in, out], so y = x @ W + b. Kept in that layout (not
// transposed into a Linear) so that GPT-2 checkpoints load and save without any reshuffling.
#include <cstdint>

#include "core/rng.hpp"
#include "nn/module.hpp"

namespace ld::nn {

class Conv1D : public Module {
 public:
  // Weight ~ N(0, init_std), bias 0 (GPT-2's init; its residual projections pass a smaller std).
  Conv1D(int64_t in_features, int64_t out_features, Generator& gen, double init_std = 0.02);
  Tensor forward(const Tensor& x) const;  // x [..., in] -> [..., out]

  Tensor weight;  // [in, out]
  Tensor bias;    // [out]
};

}  // namespace ld::nn
