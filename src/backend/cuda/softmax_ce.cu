// Softmax / log-softmax over rows (cpu/softmax.cpp) and the fused cross-entropy
// (cpu/cross_entropy.cpp): one block per row; the cross-entropy forward reads the row once, each
// thread keeping an online max and sum over its strided chunk of the vocabulary, then combines them
// across the block; the backward recomputes softmax from lse and writes dlogits directly.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace cuda_softmax {

__global__ void softmax_kernel(int64_t rows, int64_t cols, const float* x, float* y, bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = cuda::block_max(m);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += expf(xr[j] - m);
    s = cuda::block_sum(s);
    if (log) {
      const float log_s = logf(s);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = (xr[j] - m) - log_s;
    } else {
      const float inv = 1.0f / s;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
    }
  }
}

// softmax: dx = y * (dy - <dy, y>);  log_softmax: dx = dy - exp(y) * sum(dy).
__global__ void softmax_backward_kernel(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx,
                                        bool log) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t off = r * cols;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += log ? dy[off + j] : dy[off + j] * y[off + j];
    s = cuda::block_sum(s);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      dx[off + j] = log ? dy[off + j] - expf(y[off + j]) * s : y[off + j] * (dy[off + j] - s);
  }
}

__device__ inline int64_t target_of(const CrossEntropyArgs& a, int64_t row) {
  return a.target_dtype == DType::i32 ? int64_t(static_cast<const int32_t*>(a.targets)[row])
                                      : static_cast<const int64_t*>(a.targets)[row];
}

// The logits' element type: f32, or bf16/fp16 bits read and written through the host's exact
// conversions (device_util.cuh).
struct F32Logits {
  using T = float;
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
};
struct Bf16Logits {
  using T = uint16_t;
  __device__ static float load(uint16_t v) { return cuda::bf16_bits_to_f32(v); }
  __device__ static uint16_t store(float v) { return cuda::f32_to_bf16_bits(v); }
};
struct F16Logits {
  using T = uint16_t;
  __device__ static float load(uint16_t v) { return cuda::f16_bits_to_f32(v); }
  __device__ static uint16_t store(float v) { return cuda::f32_to_f16_bits(v); }
};

template <typename L>
__global__ void cross_entropy_forward_kernel(CrossEntropyArgs a, int64_t ld, float* loss_rows, float* lse) {
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const int64_t target = target_of(a, r);
    if (target == a.ignore_index) {
      if (threadIdx.x == 0) loss_rows[r] = 0.0f, lse[r] = 0.0f;
      continue;
    }
    const typename L::T* x = static_cast<const typename L::T*>(a.logits) + r * ld;
    float m = -INFINITY, s = 0.0f, total = 0.0f;
    for (int64_t j = threadIdx.x; j < a.vocab; j += blockDim.x) {  // online max and sum of exp
      const float v = L::load(x[j]);
      if (v > m) {
        s = s * expf(m - v);
        m = v;
      }
      if (m != -INFINITY) s += expf(v - m);  // -inf logits (masked tokens) add nothing
      total += v;
    }
    const float row_max = cuda::block_max(m);
    const float sum = cuda::block_sum(m == -INFINITY ? 0.0f : s * expf(m - row_max));
    const float row_total = a.label_smoothing > 0.0f ? cuda::block_sum(total) : 0.0f;
    if (threadIdx.x == 0) {
      const float log_s = logf(sum);
      const float nll = (row_max - L::load(x[target])) + log_s;
      const float e = a.label_smoothing;
      loss_rows[r] = e > 0.0f ? (1.0f - e) * nll + e * ((row_max - row_total / float(a.vocab)) + log_s) : nll;
      lse[r] = row_max + log_s;
    }
  }
}

// dlogits = (softmax - (1-e) * onehot(target) - e/V) * dloss_rows[row]; ignored rows get 0. One block
// per row (no division per element); each element is read before it is written, so in place works.
template <typename L>
__global__ void cross_entropy_backward_kernel(CrossEntropyArgs a, int64_t ld, const float* lse,
                                              const float* dloss_rows, typename L::T* dlogits) {
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const int64_t target = target_of(a, r);
    const bool ignored = target == a.ignore_index;
    const typename L::T* x = static_cast<const typename L::T*>(a.logits) + r * ld;
    typename L::T* d = dlogits + r * ld;
    const float scale = ignored ? 0.0f : dloss_rows[r], e = a.label_smoothing, l = ignored ? 0.0f : lse[r];
    const float uniform = e / float(a.vocab) * scale;
    for (int64_t j = threadIdx.x; j < a.vocab; j += blockDim.x) {
      float v = 0.0f;
      if (!ignored) {
        v = expf(L::load(x[j]) - l) * scale - uniform;
        if (j == target) v -= (1.0f - e) * scale;
      }
      d[j] = L::store(v);
    }
  }
}

unsigned row_grid(int64_t rows) { return unsigned(std::clamp<int64_t>(rows, 1, 65535)); }

}  // namespace cuda_softmax

using namespace cuda_softmax;

void CudaBackend::softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log) {
  if (rows == 0 || cols == 0) return;
  LD_CUDA_LAUNCH(softmax_kernel, row_grid(rows), cuda::kThreads, 0, stream())(rows, cols, x, y, log);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log) {
  if (rows == 0 || cols == 0) return;
  LD_CUDA_LAUNCH(softmax_backward_kernel, row_grid(rows), cuda::kThreads, 0, stream())(rows, cols, y, dy, dx, log);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse) {
  check_cross_entropy_args(a);
  if (a.rows == 0) return;
  const int64_t ld = logits_row_stride(a);
  const unsigned grid = row_grid(a.rows);
  if (a.logits_dtype == DType::bf16)
    LD_CUDA_LAUNCH(cross_entropy_forward_kernel<Bf16Logits>, grid, cuda::kThreads, 0, stream())(a, ld, loss_rows, lse);
  else if (a.logits_dtype == DType::f16)
    LD_CUDA_LAUNCH(cross_entropy_forward_kernel<F16Logits>, grid, cuda::kThreads, 0, stream())(a, ld, loss_rows, lse);
  else
    LD_CUDA_LAUNCH(cross_entropy_forward_kernel<F32Logits>, grid, cuda::kThreads, 0, stream())(a, ld, loss_rows, lse);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows,
                                         void* dlogits) {
  check_cross_entropy_args(a);
  if (a.rows == 0 || a.vocab == 0) return;
  const int64_t ld = logits_row_stride(a);
  const unsigned grid = row_grid(a.rows);
  auto* half = static_cast<uint16_t*>(dlogits);
  if (a.logits_dtype == DType::bf16)
    LD_CUDA_LAUNCH(cross_entropy_backward_kernel<Bf16Logits>, grid, cuda::kThreads, 0, stream())(
        a, ld, lse, dloss_rows, half);
  else if (a.logits_dtype == DType::f16)
    LD_CUDA_LAUNCH(cross_entropy_backward_kernel<F16Logits>, grid, cuda::kThreads, 0, stream())(
        a, ld, lse, dloss_rows, half);
  else
    LD_CUDA_LAUNCH(cross_entropy_backward_kernel<F32Logits>, grid, cuda::kThreads, 0, stream())(
        a, ld, lse, dloss_rows, static_cast<float*>(dlogits));
  LD_CUDA_CHECK_LAUNCH();
}

}  // namespace ld
