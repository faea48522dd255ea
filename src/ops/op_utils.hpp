#pragma once
// Small helpers shared by op implementations (not part of the public API).
#include "autograd/node.hpp"
#include "backend/backend.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace ld::ops::detail {

// Strides that read `t` as if broadcast to `shape` (0 on broadcast dims).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

// The floating dtype every compute kernel takes today.
inline void check_f32(const Tensor& t, const char* op, const char* arg) {
  LD_CHECK(t.defined(), op, ": ", arg, " is undefined");
  check_dtype(t, DType::f32, op, arg);
}

inline void check_index_dtype(const Tensor& t, const char* op, const char* arg) {
  LD_CHECK(t.dtype() == DType::i64 || t.dtype() == DType::i32, op, ": ", arg, " must be i32 or i64, got ",
           dtype_name(t.dtype()), " (shape ", shape_str(t.shape()), ")");
}

// Rows x cols view of a tensor over its last dim, as kernels want it.
inline int64_t rows_of(const Tensor& t) { return t.dim() == 0 ? 1 : t.numel() / t.shape().back(); }

// Cross-entropy's targets (contiguous i32/i64) checked against [0, vocab) or ignore_index, the first
// bad one named with its index; returns how many rows are not ignored (the mean's divisor).
int64_t validate_targets(const Tensor& targets, int64_t vocab, int64_t ignore_index, const Shape& logits_shape,
                         const char* op);
// The sum (or the mean over `counted` rows; 0 when none) of contiguous per-row losses, as a scalar.
Tensor reduce_losses(const Tensor& loss_rows, int64_t counted, CrossEntropyOptions::Reduction reduction);

}  // namespace ld::ops::detail
