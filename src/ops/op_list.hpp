#pragma once
// The one list of differentiable ops. tests/ops/op_coverage_test.cpp fails when an op here has no
// registered test case (forward against float64, backward against finite differences), and docs
// and backend coverage are derived from it. Add a line here when you add an op.
#define LD_FOR_EACH_OP(X) \
  X(add)                  \
  X(sub)                  \
  X(mul)                  \
  X(div)                  \
  X(scale)                \
  X(add_scalar)           \
  X(neg)                  \
  X(exp)                  \
  X(log)                  \
  X(sqrt)                 \
  X(tanh)                 \
  X(sigmoid)              \
  X(relu)                 \
  X(gelu_tanh)            \
  X(gelu_erf)             \
  X(silu)                 \
  X(swiglu)               \
  X(where)                \
  X(masked_fill)          \
  X(sum)                  \
  X(mean)                 \
  X(argmax)               \
  X(topk)                 \
  X(matmul)               \
  X(linear)               \
  X(projection)           \
  X(gelu_mlp)             \
  X(embedding)            \
  X(index_add)            \
  X(layernorm)            \
  X(rmsnorm)              \
  X(add_layernorm)        \
  X(add_rmsnorm)          \
  X(softmax)              \
  X(log_softmax)          \
  X(dropout)              \
  X(attention)            \
  X(rope)                 \
  X(cross_entropy)        \
  X(linear_cross_entropy) \
  X(concat)               \
  X(split)                \
  X(stack)                \
  X(cast)                 \
  X(reshape)              \
  X(permute)              \
  X(narrow)               \
  X(expand)               \
  X(contiguous)
