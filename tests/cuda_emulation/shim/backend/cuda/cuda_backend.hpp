#pragma once
// Stand-in for src/backend/cuda/cuda_backend.hpp when tests/cuda_emulation #includes a .cu file
// (this folder comes first on that target's include path): a CudaBackend with the members the .cu
// files' host code defines and calls, and nothing of the real one's device, streams or cuBLAS. So
// CudaBackend::cross_entropy_forward and the rest compile from the real source and run on the
// emulator: the stream is null (launches run at once, in program order) and allocate() hands out
// guard-paged host memory (simt::DeviceBuffer), NaN-filled as fresh device memory is garbage.
//
// The class lives in an anonymous namespace and is named ld::CudaBackend by an alias, so its members
// (defined by the .cu) have internal linkage and cannot collide with the real backend's, which a
// CUDA build's liandan_lib also holds. The declarations copy the real header's signatures; a
// signature that drifts from the .cu's definition stops this test from compiling.
#include <cuda_runtime.h>  // the shim

#include <memory>
#include <span>

#include "backend/backend.hpp"
#include "core/storage.hpp"

namespace ld {

namespace {

class EmulatedCudaBackend {
 public:
  // The buffer behind a Storage: a DeviceBuffer<unsigned char>, freed with the Storage.
  std::shared_ptr<Storage> allocate(size_t nbytes) {
    auto* buffer = new simt::DeviceBuffer<unsigned char>(nbytes > 0 ? nbytes : 1);
    return std::make_shared<Storage>(buffer->data(), nbytes, Device{DeviceKind::cuda, 0},
                                     [buffer](void*, size_t) { delete buffer; });
  }
  CUstream_st* stream() { return nullptr; }
  void activate() const {}  // one emulated device: nothing to select

  // norm.cu
  void layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                         const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd);
  void layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                          const float* mean, const float* rstd, float* dx, float* dw, float* db);
  void rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w, float eps,
                       float* sum_out, float* y, float* rstd);
  void rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                        const float* rstd, float* dx, float* dw);

  // softmax_ce.cu
  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log);
  void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log);
  void cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse);
  void cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows, void* dlogits);

  // adamw.cu
  void adamw_step(std::span<const AdamWArgs> buffers);
  void round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter);

  // reduce.cu
  void reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out);
  void argmax(int64_t rows, int64_t cols, const float* x, int64_t* out);
  void topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices);
  void scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src, float* dst);
  // copy_fill.cu's, which reduce_sum calls for an empty summed dim: only the f32 case, on the host.
  void fill(DType dtype, void* dst, int64_t n, double value) {
    if (dtype != DType::f32) return simt::error("shim fill: only f32 is emulated");
    for (int64_t i = 0; i < n; ++i) static_cast<float*>(dst)[i] = float(value);
  }

  // attention.cu
  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse);
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* out,
                          const float* dout, const float* lse, float* dq, float* dk, float* dv);
};

}  // namespace

using CudaBackend = EmulatedCudaBackend;

}  // namespace ld
