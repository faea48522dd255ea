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

__global__ void cross_entropy_forward_kernel(CrossEntropyArgs a, float* loss_rows, float* lse) {
  for (int64_t r = blockIdx.x; r < a.rows; r += gridDim.x) {
    const int64_t target = target_of(a, r);
    if (target == a.ignore_index) {
      if (threadIdx.x == 0) loss_rows[r] = 0.0f, lse[r] = 0.0f;
      continue;
    }
    const float* x = a.logits + r * a.vocab;
    float m = -INFINITY, s = 0.0f, total = 0.0f;
    for (int64_t j = threadIdx.x; j < a.vocab; j += blockDim.x) {  // online max and sum of exp
      const float v = x[j];
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
      const float nll = (row_max - x[target]) + log_s;
      const float e = a.label_smoothing;
      loss_rows[r] = e > 0.0f ? (1.0f - e) * nll + e * ((row_max - row_total / float(a.vocab)) + log_s) : nll;
      lse[r] = row_max + log_s;
    }
  }
}

unsigned row_grid(int64_t rows) { return unsigned(std::clamp<int64_t>(rows, 1, 65535)); }

}  // namespace cuda_softmax

using namespace cuda_softmax;

void CudaBackend::softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log) {
  if (rows == 0 || cols == 0) return;
  softmax_kernel<<<row_grid(rows), cuda::kThreads, 0, stream()>>>(rows, cols, x, y, log);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log) {
  if (rows == 0 || cols == 0) return;
  softmax_backward_kernel<<<row_grid(rows), cuda::kThreads, 0, stream()>>>(rows, cols, y, dy, dx, log);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse) {
  if (a.rows == 0) return;
  cross_entropy_forward_kernel<<<row_grid(a.rows), cuda::kThreads, 0, stream()>>>(a, loss_rows, lse);
  LD_CUDA_CHECK_LAUNCH();
}

// dlogits = (softmax - (1-e) * onehot(target) - e/V) * dloss_rows[row]; ignored rows get 0.
void CudaBackend::cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows,
                                         float* dlogits) {
  const CrossEntropyArgs args = a;
  cuda::launch_map(stream(), a.rows * a.vocab, [=] __device__(int64_t i) {
    const int64_t r = i / args.vocab, j = i % args.vocab, target = target_of(args, r);
    if (target == args.ignore_index) {
      dlogits[i] = 0.0f;
      return;
    }
    const float scale = dloss_rows[r], e = args.label_smoothing;
    float d = expf(args.logits[i] - lse[r]) * scale - e / float(args.vocab) * scale;
    if (j == target) d -= (1.0f - e) * scale;
    dlogits[i] = d;
  });
}

}  // namespace ld
