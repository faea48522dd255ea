// LayerNorm and RMSNorm (cpu/norm.cpp): one block per row for the forward and for dx (the
// variance takes a second pass over the row, as the CPU does, instead of the sum-of-squares
// shortcut), and the weight/bias gradients as column sums accumulated in double over row splits,
// then added in split order (deterministic).
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace cuda_norm {

template <bool kRms>
__global__ void norm_forward_kernel(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                                    const float* b, float eps, float* sum_out, float* y, float* mean_out,
                                    float* rstd_out) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t off = r * cols;
    const float* in = residual ? sum_out + off : x + off;
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float v = x[off + j];
      if (residual) {
        v += residual[off + j];
        sum_out[off + j] = v;
      }
      s += kRms ? v * v : v;
    }
    s = cuda::block_sum(s);  // also orders the sum_out writes before the reads below
    float mean = 0.0f, var;
    if (kRms) {
      var = s / float(cols);
    } else {
      mean = s / float(cols);
      float d2 = 0.0f;
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = in[j] - mean;
        d2 += d * d;
      }
      var = cuda::block_sum(d2) / float(cols);
    }
    const float rstd = 1.0f / sqrtf(var + eps);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float v = (in[j] - mean) * rstd * w[j];
      y[off + j] = b ? v + b[j] : v;
    }
    if (threadIdx.x == 0) {
      if (mean_out) mean_out[r] = mean;
      if (rstd_out) rstd_out[r] = rstd;
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w (RMSNorm: no mean(g) term and
// no mean subtracted from x).
template <bool kRms>
__global__ void norm_dx_kernel(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                               const float* mean, const float* rstd, float* dx) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t off = r * cols;
    const float mu = kRms ? 0.0f : mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float g = dy[off + j] * w[j], xhat = (x[off + j] - mu) * rs;
      sg += g;
      sgx += g * xhat;
    }
    const float mean_g = kRms ? 0.0f : cuda::block_sum(sg) / float(cols);
    const float mean_gx = cuda::block_sum(sgx) / float(cols);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const float xhat = (x[off + j] - mu) * rs;
      dx[off + j] = rs * (dy[off + j] * w[j] - mean_g - xhat * mean_gx);
    }
  }
}

// partial[split, c] (and partial[splits + split, c] for the bias) over this split's rows.
template <bool kRms>
__global__ void norm_column_grads_kernel(int64_t rows, int64_t cols, int64_t rows_per_split, const float* dy,
                                         const float* x, const float* mean, const float* rstd, double* partial) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, split = blockIdx.y, splits = gridDim.y;
  if (c >= cols) return;
  const int64_t r0 = split * rows_per_split, r1 = min(rows, r0 + rows_per_split);
  double dw = 0.0, db = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const float g = dy[r * cols + c];
    const float xhat = (x[r * cols + c] - (kRms ? 0.0f : mean[r])) * rstd[r];
    dw += double(g * xhat);
    db += double(g);
  }
  partial[split * cols + c] = dw;
  if (!kRms) partial[(splits + split) * cols + c] = db;
}

__global__ void finish_columns_kernel(int64_t cols, int64_t splits, const double* partial, float* out) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols || !out) return;
  double acc = 0.0;
  for (int64_t s = 0; s < splits; ++s) acc += partial[s * cols + c];
  out[c] = float(acc);
}

unsigned row_grid(int64_t rows) { return unsigned(std::clamp<int64_t>(rows, 1, 65535)); }

template <bool kRms>
void norm_backward(CudaBackend& be, int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                   const float* mean, const float* rstd, float* dx, float* dw, float* db) {
  if (cols == 0) return;
  cudaStream_t s = be.stream();
  if (rows > 0) {
    LD_CUDA_LAUNCH(norm_dx_kernel<kRms>, row_grid(rows), cuda::kThreads, 0, s)(rows, cols, dy, x, w, mean, rstd,
                                                                               dx);
    LD_CUDA_CHECK_LAUNCH();
  }
  if (!dw && !db) return;
  const int64_t splits = std::clamp<int64_t>((int64_t(1) << 17) / cols, 1, std::max<int64_t>(1, std::min<int64_t>(256, rows / 16)));
  const int64_t rows_per_split = (rows + splits - 1) / splits;
  std::shared_ptr<Storage> partial = be.allocate(size_t(2 * splits * cols) * sizeof(double));
  double* p = static_cast<double*>(partial->data());
  const unsigned col_blocks = unsigned((cols + cuda::kThreads - 1) / cuda::kThreads);
  LD_CUDA_LAUNCH(norm_column_grads_kernel<kRms>, dim3(col_blocks, unsigned(splits)), cuda::kThreads, 0, s)(
      rows, cols, rows_per_split, dy, x, mean, rstd, p);
  LD_CUDA_CHECK_LAUNCH();
  LD_CUDA_LAUNCH(finish_columns_kernel, col_blocks, cuda::kThreads, 0, s)(cols, splits, p, dw);
  LD_CUDA_CHECK_LAUNCH();
  if (!kRms) {
    LD_CUDA_LAUNCH(finish_columns_kernel, col_blocks, cuda::kThreads, 0, s)(cols, splits, p + splits * cols, db);
    LD_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace cuda_norm

using namespace cuda_norm;

void CudaBackend::layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                                    const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd) {
  if (rows == 0) return;
  LD_CUDA_LAUNCH(norm_forward_kernel<false>, row_grid(rows), cuda::kThreads, 0, stream())(
      rows, cols, x, residual, w, b, eps, sum_out, y, mean, rstd);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                                     const float* mean, const float* rstd, float* dx, float* dw, float* db) {
  norm_backward<false>(*this, rows, cols, dy, x, w, mean, rstd, dx, dw, db);
}

void CudaBackend::rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                                  float eps, float* sum_out, float* y, float* rstd) {
  if (rows == 0) return;
  LD_CUDA_LAUNCH(norm_forward_kernel<true>, row_grid(rows), cuda::kThreads, 0, stream())(
      rows, cols, x, residual, w, nullptr, eps, sum_out, y, nullptr, rstd);
  LD_CUDA_CHECK_LAUNCH();
}

void CudaBackend::rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                                   const float* rstd, float* dx, float* dw) {
  norm_backward<true>(*this, rows, cols, dy, x, w, nullptr, rstd, dx, dw, nullptr);
}

}  // namespace ld
