#pragma once
// Every Backend virtual (besides device() and name()) that CudaBackend overrides. tests/cuda checks
// this list against the virtuals declared in backend/backend.hpp (so a kernel added there without a
// CUDA version fails that test) and, at compile time, that CudaBackend declares each one itself.
#define LD_FOR_EACH_CUDA_KERNEL(X)                                                                  \
  X(allocate) X(copy_from_host) X(copy_to_host) X(synchronize) X(copy_strided) X(fill) X(random_fill) \
  X(binary) X(unary) X(unary_backward) X(affine) X(where) X(swiglu_forward) X(swiglu_backward)       \
  X(dropout) X(reduce_sum) X(argmax) X(topk) X(scatter_add_rows) X(gemm) X(linear_bf16)             \
  X(layernorm_forward) X(layernorm_backward) X(rmsnorm_forward) X(rmsnorm_backward)                  \
  X(softmax_forward) X(softmax_backward) X(embedding_forward) X(embedding_backward)                 \
  X(attention_forward) X(attention_backward) X(rope) X(cross_entropy_forward)                       \
  X(cross_entropy_backward) X(adamw_step) X(round_bf16)
