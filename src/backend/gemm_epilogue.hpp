#pragma once
// GemmArgs::epilogue and c_half as passes after a plain product, through the backend's own kernels
// (unary, unary_backward, copy_strided): the CPU's way, and a GPU's where its GEMM library has no
// fused epilogue for the case. An op that asks for an epilogue therefore gets on the CPU the bits
// the separate ops (linear, then gelu, then the next linear's rounding) would have given.
#include "backend/backend.hpp"

namespace ld {

// Whether g asks for anything beyond C = alpha op(A) op(B) + beta C + bias.
bool has_epilogue(const GemmArgs& g);

// Throws ld::Error when g's epilogue or c_half cannot be honoured (batched, alpha, beta, ldc).
void check_epilogue(const GemmArgs& g);

// The product without the epilogue (into aux for gelu_tanh, into C or a scratch buffer otherwise),
// then the epilogue and the rounding to c_half.
void gemm_then_epilogue(Backend& backend, const GemmArgs& g);

}  // namespace ld
