#pragma once
// The matrix products of a projection y [rows, out] = x [rows, in] W^T (W [out, in], nn.Linear) or
// x W (W [in, out], Conv1D): its forward, its input gradient and its weight gradient, each a GEMM on
// operands given in f32 or already rounded to 16 bits (GemmArgs::a_half / b_half). Shared by
// ops::projection and the fused ops built from projections (ops::gelu_mlp).
#include <cstdint>

#include "backend/backend.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace ld::ops::detail {

// t rounded to the 16-bit type a product in precision p reads (bf16 or fp16), as the GEMM would.
Tensor rounded_operand(const Tensor& t, ComputePrecision p);

// A [rows, cols] contiguous matrix a product reads: f32, or (half) already rounded for it. Holds the
// tensor it points into.
struct Rows {
  Tensor keep;
  const float* f32 = nullptr;
  const uint16_t* half = nullptr;
  Rows(const Tensor& full, const Tensor& rounded);
};

struct ProjectionGemms {
  int64_t rows = 0, in = 0, out = 0;
  WeightLayout layout = WeightLayout::out_in;
  ComputePrecision precision = ComputePrecision::f32;
  // Under bf16, read the weight's working copy when a WorkingWeights lists it (ops/working_weights.hpp);
  // off for a caller that passes its own rounded weight.
  bool working_weights = true;

  // y [rows, out] = x W^T, or x W.
  GemmArgs forward(const Rows& x, const Tensor& weight, float* y) const;
  // dx [rows, in] = g W, or g W^T.
  GemmArgs input_grad(const Rows& g, const Tensor& weight, float* dx) const;
  // dW = g^T x [out, in], or x^T g [in, out].
  GemmArgs weight_grad(const Rows& g, const Rows& x, float* dw) const;
};

struct ProjectionGrads {
  Tensor dx, dw, db;  // [rows, in], the weight's shape, [out]; each undefined unless wanted
};

// The gradients a projection's backward wants from g [rows, out] (f32, contiguous). x is what the
// forward kept for dW, f32 (x2) or rounded (x16); read only when want_dw. Under autocast g is rounded
// once when both products read it. dx_epilogue (with aux, the forward's pre-activation) applies to
// the dx product: the GELU's derivative of a fused MLP.
ProjectionGrads projection_grads(const ProjectionGemms& s, const Tensor& g, const Tensor& x2, const Tensor& x16,
                                 const Tensor& weight, bool want_dx, bool want_dw, bool want_db,
                                 GemmEpilogue dx_epilogue = GemmEpilogue::none, const Tensor& aux = Tensor());

}  // namespace ld::ops::detail
