#pragma once
// The interface a transformer block's MLP offers, so that a Mixture-of-Experts layer can hold any of
// them as its experts (Mixtral's w1/w2/w3 SwiGLU, GPT-2's c_fc/c_proj GELU MLP).
#include "core/tensor.hpp"
#include "nn/module.hpp"

namespace ld::nn {

class FeedForward : public Module {
 public:
  virtual Tensor forward(const Tensor& x) const = 0;  // [..., dim] -> [..., dim]
};

}  // namespace ld::nn
