#pragma once
// Autocast (PyTorch's torch.autocast semantics, matrix products only): inside an AutocastScope the
// products of matmul and linear round their inputs to bf16 or fp16 and accumulate in f32; so do the
// products of their backward, wherever it runs (a backward computes in its forward's precision).
// Tensors stay f32 everywhere (weights, activations, gradients, optimizer state); only the operands a
// GEMM reads are rounded (fp16 also rounds the product's output, as a real fp16 GEMM writes fp16),
// and a linear keeps its input for dW as the 16-bit copy its forward read. Everything else (norms,
// softmax, attention, losses) runs in f32, except that under bf16 a backend may run
// attention on tensor cores (AttentionArgs::allow_bf16).
//
// The precision is per thread; a scope restores the one before it, so scopes nest.
#include <string_view>

#include "backend/backend.hpp"

namespace ld::ops {

using ComputePrecision = ld::ComputePrecision;  // defined next to GemmArgs, which carries it

// The precision of this thread's matrix products (f32 outside any scope).
ComputePrecision autocast_precision();

// "fp32" | "bf16" | "fp16" (train.precision's names); throws ld::Error naming the valid ones.
ComputePrecision compute_precision_from_name(std::string_view name);
std::string_view compute_precision_name(ComputePrecision p);

class AutocastScope {
 public:
  explicit AutocastScope(ComputePrecision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  ComputePrecision previous_;
};

}  // namespace ld::ops
