// Reductions with the CPU backend's semantics (cpu/reduce.cpp): sums accumulate in double (a bias
// gradient sums thousands of rows and must still match a float64 reference), argmax lets the first
// NaN win as PyTorch does, topk returns the k largest in order with ties to the lower index.
#include <cfloat>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace cuda_reduce {

// One block per row of n contiguous values.
__global__ void row_sum_kernel(int64_t rows, int64_t n, const float* x, float* out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    double acc = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) acc += x[r * n + j];
    acc = cuda::block_sum(acc);
    if (threadIdx.x == 0) out[r] = float(acc);
  }
}

// partial[o, split, i] = sum over this split's rows r of x[o, r, i] (columns are coalesced).
__global__ void column_sum_kernel(int64_t outer, int64_t n, int64_t inner, int64_t rows_per_split, const float* x,
                                  double* partial) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, split = blockIdx.y, splits = gridDim.y;
  if (i >= inner) return;
  const int64_t r0 = split * rows_per_split, r1 = min(n, r0 + rows_per_split);
  for (int64_t o = blockIdx.z; o < outer; o += gridDim.z) {
    double acc = 0.0;
    for (int64_t r = r0; r < r1; ++r) acc += x[(o * n + r) * inner + i];
    partial[(o * splits + split) * inner + i] = acc;
  }
}

__global__ void finish_column_sum_kernel(int64_t outer, int64_t inner, int64_t splits, const double* partial,
                                         float* out) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < outer * inner;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = e / inner, i = e % inner;
    double acc = 0.0;
    for (int64_t s = 0; s < splits; ++s) acc += partial[(o * splits + s) * inner + i];
    out[e] = float(acc);
  }
}

// Whether candidate (v, i) beats (best_v, best_i) for argmax: the first NaN, else the largest,
// else the lower index.
__device__ inline bool argmax_beats(float v, int64_t i, float best_v, int64_t best_i) {
  if (best_i < 0) return true;
  const bool v_nan = isnan(v), best_nan = isnan(best_v);
  if (v_nan != best_nan) return v_nan;
  if (v_nan || v == best_v) return i < best_i;
  return v > best_v;
}

__global__ void argmax_kernel(int64_t rows, int64_t cols, const float* x, int64_t* out) {
  __shared__ float vals[cuda::kThreads];
  __shared__ int64_t idxs[cuda::kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float best_v = 0.0f;
    int64_t best_i = -1;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      if (argmax_beats(x[r * cols + j], j, best_v, best_i)) best_v = x[r * cols + j], best_i = j;
    vals[threadIdx.x] = best_v;
    idxs[threadIdx.x] = best_i;
    __syncthreads();
    for (int width = blockDim.x / 2; width > 0; width /= 2) {
      if (int(threadIdx.x) < width) {
        const int o = threadIdx.x + width;
        if (idxs[o] >= 0 && argmax_beats(vals[o], idxs[o], vals[threadIdx.x], idxs[threadIdx.x]))
          vals[threadIdx.x] = vals[o], idxs[threadIdx.x] = idxs[o];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) out[r] = idxs[0] < 0 ? 0 : idxs[0];
    __syncthreads();
  }
}

// topk order (the CPU's): NaN first, as torch.topk ranks it above every number, then larger value
// first; equal values, and NaNs among themselves, by lower index. A total order, so every round
// finds an element and no index comes out as -1.
__device__ inline bool topk_before(float va, int64_t ia, float vb, int64_t ib) {
  const bool na = isnan(va), nb = isnan(vb);
  if (na || nb) return na && (!nb || ia < ib);
  return va > vb || (va == vb && ia < ib);
}

// k rounds per row: each picks the first element (in topk order) after the previous pick, so no
// element needs marking. k * cols / blockDim work per thread: meant for small k (sampling, MoE).
__global__ void topk_kernel(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices) {
  __shared__ float vals[cuda::kThreads];
  __shared__ int64_t idxs[cuda::kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * cols;
    float prev_v = INFINITY;
    int64_t prev_i = -1;
    for (int64_t round = 0; round < k; ++round) {
      float best_v = -INFINITY;
      int64_t best_i = -1;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const float v = row[j];
        const bool after_prev = prev_i < 0 || topk_before(prev_v, prev_i, v, j);
        if (after_prev && (best_i < 0 || topk_before(v, j, best_v, best_i))) best_v = v, best_i = j;
      }
      vals[threadIdx.x] = best_v;
      idxs[threadIdx.x] = best_i;
      __syncthreads();
      for (int width = blockDim.x / 2; width > 0; width /= 2) {
        if (int(threadIdx.x) < width) {
          const int o = threadIdx.x + width;
          if (idxs[o] >= 0 && (idxs[threadIdx.x] < 0 || topk_before(vals[o], idxs[o], vals[threadIdx.x], idxs[threadIdx.x])))
            vals[threadIdx.x] = vals[o], idxs[threadIdx.x] = idxs[o];
        }
        __syncthreads();
      }
      prev_v = vals[0];
      prev_i = idxs[0];
      if (threadIdx.x == 0) {
        values[r * k + round] = prev_v;
        indices[r * k + round] = prev_i;
      }
      __syncthreads();
    }
  }
}

unsigned row_grid(int64_t rows) { return unsigned(std::clamp<int64_t>(rows, 1, 65535)); }

}  // namespace cuda_reduce

using namespace cuda_reduce;

void CudaBackend::reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out) {
  if (outer * inner == 0) return;
  cudaStream_t s = stream();
  if (n == 0) {
    fill(DType::f32, out, outer * inner, 0.0);
    return;
  }
  if (inner == 1) {
    LD_CUDA_LAUNCH(row_sum_kernel, row_grid(outer), cuda::kThreads, 0, s)(outer, n, x, out);
    LD_CUDA_CHECK_LAUNCH();
    return;
  }
  // Split the summed dim so that there are enough threads; each split sums its rows in double.
  const int64_t columns = outer * inner;
  const int64_t splits = std::clamp<int64_t>((int64_t(1) << 17) / columns, 1, std::min<int64_t>(256, (n + 15) / 16));
  const int64_t rows_per_split = (n + splits - 1) / splits;
  std::shared_ptr<Storage> partial = allocate(size_t(columns * splits) * sizeof(double));
  double* p = static_cast<double*>(partial->data());
  dim3 grid(unsigned((inner + cuda::kThreads - 1) / cuda::kThreads), unsigned(splits),
            unsigned(std::min<int64_t>(outer, 65535)));
  LD_CUDA_LAUNCH(column_sum_kernel, grid, cuda::kThreads, 0, s)(outer, n, inner, rows_per_split, x, p);
  LD_CUDA_CHECK_LAUNCH();
  LD_CUDA_LAUNCH(finish_column_sum_kernel, cuda::grid_for(columns), cuda::kThreads, 0, s)(outer, inner, splits, p, out);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::argmax(int64_t rows, int64_t cols, const float* x, int64_t* out) {
  if (rows == 0) return;
  LD_CUDA_LAUNCH(argmax_kernel, row_grid(rows), cuda::kThreads, 0, stream())(rows, cols, x, out);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices) {
  if (rows == 0 || k == 0) return;
  LD_CUDA_LAUNCH(topk_kernel, row_grid(rows), cuda::kThreads, 0, stream())(rows, cols, k, x, values, indices);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src,
                                   float* dst) {
  cuda::launch_map(stream(), rows * k, [=] __device__(int64_t e) {
    const int64_t r = e / k;
    atomicAdd(dst + r * cols + index[e], src[e]);
  });
}

}  // namespace ld
