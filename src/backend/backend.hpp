#pragma once
// The one interface every compute backend implements (DESIGN.md: backends). Kernels see raw device
// pointers, sizes and strides; they never see Tensors, autograd, nn or models. Shapes and strides
// are in elements. Floating-point kernels take f32 unless the signature says otherwise.
//
// Every kernel has a default that throws "not implemented on <backend>", so a new backend can be
// brought up kernel by kernel; tests/ops/op_coverage_test.cpp checks that the CPU backend (the
// reference) overrides all of them, and that any other backend lists what it lacks explicitly.
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/device.hpp"
#include "core/dtype.hpp"
#include "core/storage.hpp"

namespace ld {

enum class BinaryOp : uint8_t { add, sub, mul, div };
enum class UnaryOp : uint8_t { neg, exp, log, sqrt, tanh, sigmoid, relu, gelu_tanh, gelu_erf, silu };
enum class RandomKind : uint8_t { uniform, normal };
enum class RopeLayout : uint8_t { interleaved, half };  // pairs (2i, 2i+1) as GPT-J/llama2.c; (i, i+d/2) as HF LLaMA
const char* op_name(BinaryOp op);  // "add", "sub", ...
const char* op_name(UnaryOp op);   // "neg", ..., "gelu_tanh", "silu"

// The precision a matrix product computes in (ops/autocast.hpp sets it for matmul and linear).
// bf16/fp16: A and B are rounded to that type (round to nearest even) and products accumulate in
// f32; fp16 also rounds the result to fp16 (overflow to inf), as a real fp16 GEMM's output would be.
// The buffers stay f32 either way.
enum class ComputePrecision : uint8_t { f32, bf16, fp16 };
// The 16-bit type a bf16 or fp16 product rounds its operands to (GemmArgs::a_half, c_half).
inline DType half_dtype(ComputePrecision p) { return p == ComputePrecision::bf16 ? DType::bf16 : DType::f16; }

// What a product does to its result before writing it (GemmArgs::epilogue).
enum class GemmEpilogue : uint8_t { none, gelu_tanh, dgelu_tanh };

// Row-major C[b] = alpha * op(A[b]) * op(B[b]) + beta * C[b], op(X) = X or X^T.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f, beta = 0.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float* c = nullptr;
  int64_t ldc = 0;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // elements between batch items (0 = shared)
  ComputePrecision precision = ComputePrecision::f32;
  // [n] or nullptr: added to every row of C with the product, C = alpha op(A) op(B) + beta C + bias
  // (a projection's bias; a GPU adds it in the GEMM's epilogue instead of a pass over C).
  const float* bias = nullptr;
  // An operand already rounded to the precision's 16-bit type (bf16 or fp16 bits; precision not
  // f32), read instead of a or b with the same lda/ldb and batch stride counted in its elements. An
  // operand that several products read (a projection's input: its forward and dW; its output
  // gradient: dX and dW) is then rounded once, and kept at half the bytes.
  const uint16_t* a_half = nullptr;
  const uint16_t* b_half = nullptr;
  // Done to the product before it is written: by a GPU in the GEMM's epilogue, by the CPU in passes
  // after it through the same kernels the separate ops run (backend/gemm_epilogue.hpp). Needs batch
  // 1, alpha 1, beta 0, and C and aux with rows n apart (ldc = n).
  // - gelu_tanh: aux = op(A) op(B) + bias, the pre-activation a backward needs; C = gelu_tanh(aux).
  // - dgelu_tanh: C = op(A) op(B) * gelu_tanh'(aux), aux being that forward's pre-activation.
  GemmEpilogue epilogue = GemmEpilogue::none;
  float* aux = nullptr;
  // C written rounded to the precision's 16-bit type here instead of into c (bf16/fp16 products, the
  // same conditions as an epilogue): an activation only other products read never exists in f32.
  uint16_t* c_half = nullptr;
};

// Scaled-dot-product attention over q [B, Hq, Tq, D] and k, v [B, Hkv, Tk, D] (Hq a multiple of Hkv:
// grouped-query attention). Each tensor is given by strides for (b, h, t); the last dim is contiguous.
// Causal masking aligns the last query with the last key (query i sees keys <= i + Tk - Tq), which is
// what decoding with a KV cache needs. mask, if given, is an additive f32 mask with strides for
// (b, h, tq, tk) (0 for broadcast dims). lse is [B, Hq, Tq] contiguous: log-sum-exp of the scaled
// scores per query, saved by the forward for the backward.
struct AttentionArgs {
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, head_dim = 0;
  float scale = 1.0f;
  bool causal = false;
  int64_t q_stride[3]{}, k_stride[3]{}, v_stride[3]{}, o_stride[3]{};
  const float* mask = nullptr;
  int64_t mask_stride[4]{};
  // The caller accepts bf16 rounding of q, k, v, P and dS inside the kernel (bf16 autocast): a
  // backend may then use tensor cores (CUDA: head dim 64 or 128). The CPU ignores it.
  bool allow_bf16 = false;
};

// Rotary position embedding on x [B, T, H, D] (contiguous). positions: i64, [T] if pos_batch_stride is
// 0, else [B, T]. Only the first rotary_dim of D rotate. inverse rotates by -angle (the backward).
struct RopeArgs {
  int64_t batch = 0, seq = 0, heads = 0, head_dim = 0, rotary_dim = 0;
  const int64_t* positions = nullptr;
  int64_t pos_batch_stride = 0;
  double theta = 10000.0;
  RopeLayout layout = RopeLayout::half;
  bool inverse = false;
};

// Cross-entropy over rows of logits [rows, vocab] with integer targets (i32 or i64). Rows whose
// target is ignore_index give loss 0 and gradient 0. Label smoothing e mixes the one-hot target
// with the uniform distribution: loss = (1-e) * nll + e * mean_j(-log p_j).
struct CrossEntropyArgs {
  int64_t rows = 0, vocab = 0;
  // Rows ld elements apart (0: vocab), in logits_dtype: f32, or bf16/fp16 bits (an LM head's logits
  // under autocast, as PyTorch's autocast linear writes them); computed in f32 either way.
  const void* logits = nullptr;
  DType logits_dtype = DType::f32;
  int64_t ld = 0;
  const void* targets = nullptr;
  DType target_dtype = DType::i64;
  int64_t ignore_index = -100;
  float label_smoothing = 0.0f;
};
// The elements between rows of the logits (ld, or vocab when 0).
inline int64_t logits_row_stride(const CrossEntropyArgs& a) { return a.ld > 0 ? a.ld : a.vocab; }
// Every backend's check of a's logits: dtype f32/bf16/f16, and a row stride that fits the vocabulary.
void check_cross_entropy_args(const CrossEntropyArgs& a);

// One AdamW step over a flat parameter buffer (decoupled weight decay, bias-corrected moments).
// Backend::adamw_step takes every buffer of a step at once.
struct AdamWArgs {
  int64_t n = 0;
  float* param = nullptr;
  const float* grad = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float grad_scale = 1.0f;  // multiplies grad (gradient clipping / loss-scale undo in one pass)
  int64_t step = 1;         // 1-based, for bias correction
  // When set, the updated param's bf16 working copy [n] (ops/working_weights.hpp) is written in the
  // same pass, rounded as Backend::round_bf16 rounds with this key and counter.
  uint16_t* param_bf16 = nullptr;
  uint64_t rounding_key = 0, rounding_counter = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string_view name() const = 0;

  // --- memory
  virtual std::shared_ptr<Storage> allocate(size_t nbytes) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void synchronize() {}

  // --- layout, dtype and filling
  // dst[i] = cast(src[i]) over an ndim index space with arbitrary (even zero) strides on both sides.
  virtual void copy_strided(int ndim, const int64_t* shape, DType src_dtype, const void* src,
                            const int64_t* src_strides, DType dst_dtype, void* dst, const int64_t* dst_strides);
  virtual void fill(DType dtype, void* dst, int64_t n, double value);
  // Philox: element i uses counter (offset + i/4), lane i%4. uniform in [a, b); normal mean a, std b.
  virtual void random_fill(RandomKind kind, float* dst, int64_t n, uint64_t seed, uint64_t offset, float a, float b);

  // --- elementwise (out contiguous)
  virtual void binary(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* a_strides,
                      const float* b, const int64_t* b_strides, float* out);
  virtual void unary(UnaryOp op, int64_t n, const float* x, float* y);
  // dx = dy * f'(x); y is the forward's output. Each rule reads one of them and the other may be
  // null: exp, sqrt, tanh and sigmoid read y; log, relu, gelu and silu read x; neg neither.
  virtual void unary_backward(UnaryOp op, int64_t n, const float* x, const float* y, const float* dy, float* dx);
  virtual void affine(int64_t n, const float* x, float alpha, float beta, float* y);  // y = alpha*x + beta
  virtual void where(int ndim, const int64_t* shape, const uint8_t* cond, const int64_t* cond_strides,
                     const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides, float* out);
  virtual void swiglu_forward(int64_t n, const float* gate, const float* up, float* out);  // silu(gate) * up
  virtual void swiglu_backward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate, float* dup);
  virtual void dropout(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y);

  // --- reductions
  virtual void reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out);  // out[o,i] = sum_r x[o,r,i]
  virtual void argmax(int64_t rows, int64_t cols, const float* x, int64_t* out);
  virtual void topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices);
  // dst [rows, cols] (zeroed by the caller) += src [rows, k] scattered by index [rows, k]
  virtual void scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src, float* dst);

  // --- matrix multiply
  virtual void gemm(const GemmArgs& args);
  // Y[m, n] = X[m, k] W^T with W bf16 [n, k] (a Linear), or X W with W bf16 [k, n] when w_kn (a
  // Conv1D); + Y when accumulate. W is raw 16-bit patterns; X, Y f32; all contiguous. Inference with
  // bf16 weights (infer/bf16_weights.hpp).
  virtual void linear_bf16(int64_t /*m*/, int64_t /*n*/, int64_t /*k*/, const float* /*x*/, const uint16_t* /*w*/,
                           bool /*w_kn*/, float* /*y*/, bool /*accumulate*/) {
    not_implemented("linear_bf16");
  }

  // --- normalisation (rows of length cols). residual may be null; when given, the norm is taken of
  // x + residual and that sum is written to sum_out (the fused "residual add + norm" of a block).
  virtual void layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                                 const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd);
  // x is the normalised input (the sum when a residual was fused); dw, db are overwritten (b may be null).
  virtual void layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                                  const float* mean, const float* rstd, float* dx, float* dw, float* db);
  virtual void rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                               float eps, float* sum_out, float* y, float* rstd);
  virtual void rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                                const float* rstd, float* dx, float* dw);

  // --- softmax over the last dim (log = log_softmax)
  virtual void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log);
  virtual void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log);

  // --- embedding: ids are i32 or i64 and already range-checked by the op
  virtual void embedding_forward(int64_t n, const void* ids, DType id_dtype, int64_t dim, const float* table, float* out);
  // dtable (zeroed by the caller) += scatter of dy rows
  virtual void embedding_backward(int64_t n, const void* ids, DType id_dtype, int64_t vocab, int64_t dim,
                                  const float* dy, float* dtable);

  // --- attention and rotary embedding (see the argument structs)
  virtual void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                                 float* lse);
  // dout is read with the output's strides (o_stride); dq, dk, dv are contiguous [B, H, T, D] and overwritten
  virtual void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                  const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv);
  virtual void rope(const RopeArgs& a, const float* x, float* y);

  // --- loss: loss_rows [rows] and lse [rows] from the forward; the backward writes dlogits, scaled
  // per row by dloss_rows (the upstream gradient, already divided by the number of counted rows), in
  // the logits' dtype and layout (rounded once from f32); dlogits may be the logits (in place).
  virtual void cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse);
  virtual void cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows, void* dlogits);

  // --- optimizer: one AdamW step over each buffer (a model's parameters). A device backend updates
  // them in a few launches, not one per parameter.
  virtual void adamw_step(std::span<const AdamWArgs> buffers);
  // y[i] = x[i] rounded to bf16: to nearest even when key is 0, else stochastically
  // (f32_to_bf16_stochastic) with the low 16 bits of Philox lane i%4 at (key, counter + i/4).
  virtual void round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter);

 protected:
  [[noreturn]] void not_implemented(std::string_view kernel) const;
};

// The backend that owns a device. The CPU backend always exists; others register when built in.
// While a KernelProfile (kernel_profile.hpp) is alive, a timing wrapper of it.
Backend& backend_for(Device device);

}  // namespace ld
