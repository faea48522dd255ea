#pragma once
// Hugging Face's Conv1D (transformers.pytorch_utils.Conv1D), GPT-2's projection layer: a linear layer
// whose weight is stored transposed, [in, out], so y = x @ W + b. Kept in that layout (not
// transposed into a Linear) so that GPT-2 checkpoints load and save without any reshuffling.
#include <cstdint>

#include "core/rng.hpp"
#include "nn/module.hpp"
#include "nn/projection_adapter.hpp"

namespace ld::nn {

class Conv1D : public Module {
 public:
  // Weight ~ N(0, init_std), bias 0 (GPT-2's init; its residual projections pass a smaller std).
  Conv1D(int64_t in_features, int64_t out_features, Generator& gen, double init_std = 0.02);
  Tensor forward(const Tensor& x) const;  // x [..., in] -> [..., out], through any attached adapters
  // As nn::Linear::attach_adapter.
  void attach_adapter(std::shared_ptr<ProjectionAdapter> adapter);
  const ProjectionAdapters& adapters() const { return adapters_; }

  Tensor weight;  // [in, out]
  Tensor bias;    // [out]

 private:
  ProjectionAdapters adapters_;
};

}  // namespace ld::nn
