#pragma once
// The reference backend: correct first, fast second, and the one every other backend is tested
// against. Kernels are grouped by concern into files of their own (see the comments below);
// OpenMP parallelises them and oneDNN's sgemm does the matrix products (picked by measurement:
// docs/architecture.md "GEMM").
#include "backend/backend.hpp"

namespace ld {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return kCPU; }
  std::string_view name() const override { return "cpu"; }

  // memory.cpp
  std::shared_ptr<Storage> allocate(size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;

  // copy.cpp
  void copy_strided(int ndim, const int64_t* shape, DType src_dtype, const void* src, const int64_t* src_strides,
                    DType dst_dtype, void* dst, const int64_t* dst_strides) override;
  void fill(DType dtype, void* dst, int64_t n, double value) override;
  // random.cpp
  void random_fill(RandomKind kind, float* dst, int64_t n, uint64_t seed, uint64_t offset, float a, float b) override;
  void dropout(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) override;

  // elementwise.cpp
  void binary(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* a_strides, const float* b,
              const int64_t* b_strides, float* out) override;
  void unary(UnaryOp op, int64_t n, const float* x, float* y) override;
  void unary_backward(UnaryOp op, int64_t n, const float* x, const float* y, const float* dy, float* dx) override;
  void affine(int64_t n, const float* x, float alpha, float beta, float* y) override;
  void where(int ndim, const int64_t* shape, const uint8_t* cond, const int64_t* cond_strides, const float* a,
             const int64_t* a_strides, const float* b, const int64_t* b_strides, float* out) override;
  void swiglu_forward(int64_t n, const float* gate, const float* up, float* out) override;
  void swiglu_backward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate,
                       float* dup) override;

  // reduce.cpp
  void reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out) override;
  void argmax(int64_t rows, int64_t cols, const float* x, int64_t* out) override;
  void topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices) override;
  void scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src,
                        float* dst) override;

  // gemm.cpp (small_m_gemm.cpp: the few-row products of decoding)
  void gemm(const GemmArgs& args) override;
  void linear_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, bool w_kn, float* y,
                   bool accumulate) override;

  // norm.cpp
  void layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                         const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd) override;
  void layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                          const float* mean, const float* rstd, float* dx, float* dw, float* db) override;
  void rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w, float eps,
                       float* sum_out, float* y, float* rstd) override;
  void rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                        const float* rstd, float* dx, float* dw) override;

  // softmax.cpp
  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log) override;
  void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log) override;

  // embedding.cpp
  void embedding_forward(int64_t n, const void* ids, DType id_dtype, int64_t dim, const float* table,
                         float* out) override;
  void embedding_backward(int64_t n, const void* ids, DType id_dtype, int64_t vocab, int64_t dim, const float* dy,
                          float* dtable) override;

  // attention.cpp, rope.cpp
  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse) override;
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* out,
                          const float* dout, const float* lse, float* dq, float* dk, float* dv) override;
  void rope(const RopeArgs& a, const float* x, float* y) override;

  // cross_entropy.cpp
  void cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse) override;
  void cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows,
                              void* dlogits) override;

  // adamw.cpp
  void adamw_step(std::span<const AdamWArgs> buffers) override;
  void round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter) override;
};

CpuBackend& cpu_backend();

// Threads used by CPU kernels (OpenMP). Defaults to OMP_NUM_THREADS or the number of cores.
int num_threads();
void set_num_threads(int n);

}  // namespace ld
