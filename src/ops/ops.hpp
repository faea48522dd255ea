#pragma once
// The differentiable ops. Each takes and returns Tensors, checks shapes and dtypes (errors name the
// op and the shapes), dispatches to the tensor's backend and records its backward rule. The list
// in op_list.hpp is the one place that enumerates them (coverage test, docs).
#include <optional>
#include <vector>

#include "backend/backend.hpp"
#include "core/tensor.hpp"

namespace ld {
class Generator;
}

namespace ld::ops {

// --- elementwise, NumPy broadcasting
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);              // alpha * x
Tensor add_scalar(const Tensor& x, double value);         // x + value
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x, bool tanh_approximation = true);  // tanh: GPT-2's "gelu_new"; false: exact erf
Tensor silu(const Tensor& x);
Tensor swiglu(const Tensor& gate, const Tensor& up);  // silu(gate) * up, fused
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: u8, broadcast
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);  // mask: u8, broadcast to x

// --- reductions
Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor sum(const Tensor& x);  // all elements -> scalar
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& x);
// Sum a broadcast gradient back down to `shape` (the backward of broadcasting).
Tensor sum_to_shape(const Tensor& x, const Shape& shape);
Tensor argmax(const Tensor& x, int64_t dim = -1);  // i64, dim removed
struct TopK {
  Tensor values;   // differentiable
  Tensor indices;  // i64
};
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1);  // largest first

// --- matrix products
// Batched matmul with broadcasting over leading dims; 1-D operands as in NumPy are not supported.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., in] @ weight[out, in]^T + bias[out] (PyTorch/Hugging Face layout). bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// How a projection's weight is stored: [out, in] (nn.Linear) or [in, out] (Hugging Face's Conv1D).
enum class WeightLayout { out_in, in_out };
// x [..., in] through weight, + bias [out] or + addend [..., out] (not both), as one gemm: the bias
// is broadcast into the output first and the gemm adds to it. The addend's buffer becomes the output
// when nothing else holds it (pass a fresh projection output with std::move), so y + B h (LoRA)
// costs no pass of its own; otherwise it is copied. The addend's gradient is the output's.
Tensor projection(const Tensor& x, const Tensor& weight, WeightLayout layout, const Tensor& bias = Tensor(),
                  Tensor addend = Tensor());
// GPT-2's MLP as one op: projection(gelu(projection(x, fc_weight, fc_bias), tanh), proj_weight,
// proj_bias), both weights f32 in `layout`, the biases optional. The GELU rides in the first
// product's epilogue and its derivative in the epilogue of the backward product that makes its
// input's gradient (GemmArgs::epilogue), and under autocast the hidden activation is written in 16
// bits only (GemmArgs::c_half). On the CPU the same bits as the three ops, gradients included.
Tensor gelu_mlp(const Tensor& x, const Tensor& fc_weight, const Tensor& fc_bias, const Tensor& proj_weight,
                const Tensor& proj_bias, WeightLayout layout);

// --- embedding
Tensor embedding(const Tensor& ids, const Tensor& table);  // ids i32/i64 [...]; table [V, C] -> [..., C]
// The adjoint of embedding's gather: out = zeros([rows, C]); out[index[i], :] += src[i, :] for every
// position i of index (i32/i64 [...]), src [..., C]. Repeated indices accumulate. Backward: a gather.
Tensor index_add(const Tensor& index, const Tensor& src, int64_t rows);

// --- normalisation over the last dim
Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
// Fused residual add + norm of a pre-norm block: sum = x + residual, normed = norm(sum).
struct ResidualNorm {
  Tensor sum;
  Tensor normed;
};
ResidualNorm add_layernorm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                           double eps = 1e-5);
ResidualNorm add_rmsnorm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps = 1e-6);

// --- softmax family
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

// --- regularisation
// Inverted dropout with a Philox mask: the backward regenerates the mask from (seed, offset)
// instead of storing it. p = 0 or !training returns x.
Tensor dropout(const Tensor& x, double p, bool training = true, Generator* gen = nullptr);

// --- attention
struct AttentionOptions {
  bool causal = true;
  std::optional<double> scale;  // default 1/sqrt(head_dim)
  Tensor mask;                  // optional: additive f32 or boolean u8 (1 = keep), broadcast to [B, H, Tq, Tk]
};
// q [B, Hq, Tq, D], k and v [B, Hkv, Tk, D] (Hq % Hkv == 0). Returns [B, Hq, Tq, D]. Flash-style:
// never holds a Tq x Tk matrix; saves only the output and a log-sum-exp per query for backward.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& options = {});

struct RopeOptions {
  double theta = 10000.0;
  int64_t rotary_dim = 0;  // 0 = the whole head dim
  RopeLayout layout = RopeLayout::half;
};
// x [B, T, H, D]; positions i64 [T] or [B, T].
Tensor rope(const Tensor& x, const Tensor& positions, const RopeOptions& options = {});

// --- loss
struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
  enum class Reduction { mean, sum, none } reduction = Reduction::mean;
};
// logits [N, V] (or [..., V]), targets i32/i64 [N] (or [...]). Fused log-softmax + NLL, chunked over
// the vocabulary: no probability tensor is kept, the backward writes dlogits directly.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& options = {});
// cross_entropy(linear(x, weight, bias), targets, options), the LM head's loss, without the [rows, V]
// logits ever existing whole: rows go through chunk_rows at a time (0: as many as keep a chunk near
// 2^27 logits). With a gradient wanted, each chunk's dlogits are written over its logits and made
// into its dx rows and its share of dW and db right away; backward only scales those by the upstream
// gradient (which is why reduction none, whose upstream gradient differs per row, runs the two ops
// instead, as does fp16 autocast, for its loss scaling). Under bf16 autocast x and weight are
// rounded once for every chunk's products, and the logits exist in bf16 only (as PyTorch's autocast
// linear writes them; the loss is computed in f32 from them), their dlogits too.
Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& targets,
                            const CrossEntropyOptions& options = {}, int64_t chunk_rows = 0);
// The rows per chunk linear_cross_entropy picks for `rows` rows over a vocabulary of `vocab`.
int64_t linear_cross_entropy_chunk_rows(int64_t rows, int64_t vocab);

// --- joining and splitting
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);

// --- dtype
Tensor cast(const Tensor& x, DType dtype);

}  // namespace ld::ops
