#pragma once
// Small helpers shared by op implementations (not part of the public API).
#include "autograd/node.hpp"
#include "backend/backend.hpp"
#include "core/tensor.hpp"

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

}  // namespace ld::ops::detail
