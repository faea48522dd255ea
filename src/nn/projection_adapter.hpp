#pragma once
// The seam through which parameter-efficient fine-tuning (src/peft) changes a projection layer
// (nn::Linear, nn::Conv1D) without replacing it: an attached adapter sees the layer's input x and
// its base output y and returns the new output. LoRA returns y + scale * B(A(dropout(x))); a Houlsby
// adapter returns y + up(act(down(y))). The base layer never knows which, and the adapter never
// reads the base weight in its forward, so a frozen base stored in another format (QLoRA's int4/int8)
// only has to provide its own forward.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.hpp"

namespace ld::nn {

class ProjectionAdapter : public Module {
 public:
  // x [..., in] the layer's input, y [..., out] its output so far -> the new [..., out]. y comes by
  // value so that an adapter may write into it when nothing else holds it (ops::projection's addend).
  virtual Tensor adapt(const Tensor& x, Tensor y) const = 0;
  // The child name the adapter is registered under ("lora", "adapter"): one of each kind per layer.
  virtual std::string kind() const = 0;
};

using ProjectionAdapters = std::vector<std::shared_ptr<ProjectionAdapter>>;

// Applies the adapters in the order they were attached.
inline Tensor apply_adapters(const ProjectionAdapters& adapters, const Tensor& x, Tensor y) {
  for (const auto& a : adapters) y = a->adapt(x, std::move(y));
  return y;
}

}  // namespace ld::nn
