#pragma once
// The CUDA backend (issue 9): every Backend kernel on an NVIDIA GPU, with the CPU backend's
// semantics (the CPU backend is the reference the tests compare against). Kernels run on one
// compute stream per device; host <-> device copies run on a copy stream ordered after it. Device
// memory comes from a caching allocator (device_allocator.hpp), so a training step that asks for
// the same sizes every step stops calling cudaMalloc after the first.
//
// This header is plain C++ (no CUDA headers), so code outside src/backend/cuda can include it.
// Files by concern: memory.cpp (allocation, streams, copies), copy_fill.cu (copy_strided, fill,
// random_fill, dropout), elementwise.cu, reduce.cu, gemm.cpp (cuBLASLt), norm.cu, softmax_ce.cu,
// attention.cu, embedding_rope.cu, adamw.cu. kernel_list.hpp lists the Backend virtuals this class
// overrides (checked by tests/cuda).
#include <memory>

#include "backend/backend.hpp"

struct CUstream_st;  // cudaStream_t is CUstream_st*

namespace ld {

namespace cuda {
class DeviceAllocator;
class GemmContext;
}  // namespace cuda

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;
  Device device() const override { return Device{DeviceKind::cuda, index_}; }
  std::string_view name() const override { return "cuda"; }

  // memory.cpp
  std::shared_ptr<Storage> allocate(size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override;

  // copy_fill.cu
  void copy_strided(int ndim, const int64_t* shape, DType src_dtype, const void* src, const int64_t* src_strides,
                    DType dst_dtype, void* dst, const int64_t* dst_strides) override;
  void fill(DType dtype, void* dst, int64_t n, double value) override;
  void random_fill(RandomKind kind, float* dst, int64_t n, uint64_t seed, uint64_t offset, float a, float b) override;
  void dropout(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) override;

  // elementwise.cu
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

  // reduce.cu
  void reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out) override;
  void argmax(int64_t rows, int64_t cols, const float* x, int64_t* out) override;
  void topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices) override;
  void scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src,
                        float* dst) override;

  // gemm.cpp
  void gemm(const GemmArgs& args) override;
  // How the last product with an epilogue or a 16-bit C ran: "cublaslt" (fused, D as asked),
  // "cublaslt_f32_d" (fused into an f32 D, then rounded), or "passes" (as the CPU does); the device
  // checks print it, since which one cuBLASLt accepts is only known on a GPU.
  const char* last_epilogue_path() const { return last_epilogue_path_; }
  void linear_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, bool w_kn, float* y,
                   bool accumulate) override;

  // norm.cu
  void layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                         const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd) override;
  void layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                          const float* mean, const float* rstd, float* dx, float* dw, float* db) override;
  void rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w, float eps,
                       float* sum_out, float* y, float* rstd) override;
  void rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                        const float* rstd, float* dx, float* dw) override;

  // softmax_ce.cu
  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log) override;
  void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log) override;
  void cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse) override;
  void cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows,
                              void* dlogits) override;

  // embedding_rope.cu
  void embedding_forward(int64_t n, const void* ids, DType id_dtype, int64_t dim, const float* table,
                         float* out) override;
  void embedding_backward(int64_t n, const void* ids, DType id_dtype, int64_t vocab, int64_t dim, const float* dy,
                          float* dtable) override;
  void rope(const RopeArgs& a, const float* x, float* y) override;

  // attention.cu
  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse) override;
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* out,
                          const float* dout, const float* lse, float* dq, float* dk, float* dv) override;

  // adamw.cu
  void adamw_step(std::span<const AdamWArgs> buffers) override;
  void round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter) override;

  // The compute stream, with this backend's device made current on the calling thread.
  CUstream_st* stream();
  cuda::DeviceAllocator& allocator() { return *allocator_; }

 private:
  int index_;
  CUstream_st* stream_ = nullptr;
  CUstream_st* copy_stream_ = nullptr;
  std::unique_ptr<cuda::DeviceAllocator> allocator_;
  std::unique_ptr<cuda::GemmContext> gemm_;
  const char* last_epilogue_path_ = "none";

  void activate() const;
  void order_copy_after_compute();
};

// Number of usable CUDA devices: 0 when there is no driver, no device, or the driver refuses.
int cuda_device_count();
// Why there are none (the driver's words), for skip messages and errors; empty when there are some.
std::string cuda_unavailable_reason();
// The backend of cuda:index, created on first use. Throws ld::Error "no CUDA device is available"
// when there is none, or naming the valid indices when index is out of range.
CudaBackend& cuda_backend(int index);

}  // namespace ld
