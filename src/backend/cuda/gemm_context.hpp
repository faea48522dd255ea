#pragma once
// cuBLASLt state of one CUDA backend: the handle, a workspace, and one matmul plan (descriptors
// and the heuristic's algorithm) per distinct product shape, so steady-state training re-queries
// nothing. Also the small conversion kernels around it (gemm_kernels.cu).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "backend/backend.hpp"

namespace ld {
class CudaBackend;
}

namespace ld::cuda {

// One matrix operand as cuBLASLt sees it (column-major): rows x cols with leading dimension ld,
// batch items batch_stride apart.
struct LtOperand {
  cudaDataType_t type;
  bool transposed;
  int64_t rows, cols, ld, batch_stride;
  uint32_t alignment;  // bytes the pointer is aligned to (at most 256)
};

// What cuBLASLt does to the product before writing D: add a bias (out.rows floats to every column),
// then nothing, a GELU that keeps its input in aux (GELU_AUX[_BIAS]), or a multiplication by the
// GELU's derivative at aux (DGELU). aux is f32, laid out as D with leading dimension aux_ld.
struct LtEpilogue {
  const float* bias = nullptr;
  GemmEpilogue kind = GemmEpilogue::none;
  float* aux = nullptr;
  int64_t aux_ld = 0;
  bool any() const { return bias != nullptr || kind != GemmEpilogue::none; }
  // The least alignment of bias and aux (a plan chosen for aligned ones may not take others).
  uint32_t alignment() const;
};

class GemmContext {
 public:
  explicit GemmContext(CudaBackend& backend);
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  // D = epilogue(alpha op(first) op(second) + beta C) with C = D (out.type: f32, or bf16 for a 16-bit
  // C), batched when batch > 1. Returns false, with nothing queued, when cuBLASLt has no algorithm
  // for the product with that epilogue, or refuses the one its heuristic offered.
  bool matmul(int64_t batch, const LtOperand& first, const void* first_ptr, const LtOperand& second,
              const void* second_ptr, const LtOperand& out, void* out_ptr, float alpha, float beta,
              const LtEpilogue& epilogue = {});

 private:
  struct Plan;
  using Key = std::tuple<int64_t, int, bool, int64_t, int64_t, int64_t, int64_t, uint32_t, int, bool, int64_t, int64_t,
                         int64_t, int64_t, uint32_t, int, int64_t, int64_t, int64_t, uint32_t, bool, bool, int, int64_t,
                         uint32_t>;
  // nullptr when there is no algorithm with the epilogue (without one, no algorithm is an error)
  Plan* plan_for(int64_t batch, const LtOperand& first, const LtOperand& second, const LtOperand& out, bool has_beta,
                 const LtEpilogue& epilogue);

  CudaBackend& backend_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::mutex mutex_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

// gemm_kernels.cu
// Packs items of a stored f32 matrix (rows x cols, leading dim ld, items item_stride apart) into a
// 16-bit buffer [items, rows, dst_ld >= cols] (the padding is not written), rounded to bf16 or
// (fp16 = true) fp16 as the host does.
void pack_half(cudaStream_t s, const float* src, int64_t items, int64_t item_stride, int64_t rows, int64_t cols,
               int64_t ld, uint16_t* dst, int64_t dst_ld, bool fp16);
// The same layout change for a matrix already in 16 bits (GemmArgs::a_half / b_half): copied as is.
void repack_half(cudaStream_t s, const uint16_t* src, int64_t items, int64_t item_stride, int64_t rows, int64_t cols,
                 int64_t ld, uint16_t* dst, int64_t dst_ld);
// C[b] (rows x cols, ldc) rounded to fp16 values in place (what a fp16 GEMM's output would hold).
void round_to_f16(cudaStream_t s, float* c, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld);
// C[b] = beta * C[b] (0 when beta is 0, whatever C held), plus bias[col] on every row when bias is
// given: a product with k = 0, or the bias written before a product that adds onto it.
void scale_matrix(cudaStream_t s, float* c, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld,
                  float beta, const float* bias = nullptr);
// out[i] = bf16 w[i] widened to f32.
void widen_bf16(cudaStream_t s, const uint16_t* w, int64_t n, float* out);

}  // namespace ld::cuda
