#include "infer/bf16_weights.hpp"

#include "autograd/grad_mode.hpp"
#include "core/tensor.hpp"
#include "nn/conv1d.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace ld::infer {

namespace {

// Swaps the data behind w's handle for a bf16 copy: the parameter lists, the layer's member and any
// tied alias all hold this same TensorImpl.
int64_t convert(const Tensor& w) {
  if (!w.defined() || w.dtype() == DType::bf16) return 0;
  Tensor b = w.detach().to(DType::bf16).contiguous();
  TensorImpl& impl = w.impl();
  impl.storage = b.impl().storage;
  impl.strides = b.strides();
  impl.offset = b.offset();
  impl.dtype = DType::bf16;
  impl.requires_grad = false;
  impl.grad.reset();
  return 1;
}

int64_t convert_tree(nn::Module& m) {
  int64_t n = 0;
  if (auto* linear = dynamic_cast<nn::Linear*>(&m)) n += convert(linear->weight);
  if (auto* conv = dynamic_cast<nn::Conv1D*>(&m)) n += convert(conv->weight);
  if (auto* embedding = dynamic_cast<nn::Embedding*>(&m)) n += convert(embedding->weight);
  for (const auto& [name, child] : m.named_children()) n += convert_tree(*child);
  return n;
}

}  // namespace

int64_t to_bf16_weights(nn::Module& model) {
  autograd::NoGradGuard no_grad;
  return convert_tree(model);
}

}  // namespace ld::infer
