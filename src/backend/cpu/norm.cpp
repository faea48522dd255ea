// LayerNorm and RMSNorm over rows, with the residual add of a pre-norm block fused into the
// forward. Each row is small (hundreds to a few thousand floats) and stays in L1 across the passes
// of one row, so the variance takes a second pass over cached data instead of the
// sum-of-squares shortcut, which cancels badly when |mean| >> std.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/vec_math.hpp"

namespace ld {

namespace {

using cpu::kLanes;
using cpu::lane_sum;
using cpu::sum_lanes;

// Rows accumulated in float before the per-column weight gradients are flushed into double.
constexpr int64_t kFlushRows = 32;
// Below this many elements a kernel runs on the calling thread (OpenMP start-up would dominate).
constexpr int64_t kParallelMin = int64_t(1) << 15;

// The row the norm is taken of: x itself, or x + residual written to sum_out on the way.
inline const float* row_input_and_sum(int64_t cols, const float* x, const float* residual, float* sum_out,
                                      float* sum) {
  if (residual) {
    *sum = lane_sum(cols, [&](int64_t j) {
      float v = x[j] + residual[j];
      sum_out[j] = v;
      return v;
    });
    return sum_out;
  }
  *sum = lane_sum(cols, [&](int64_t j) { return x[j]; });
  return x;
}

void layernorm_row(int64_t cols, const float* x, const float* residual, const float* w, const float* b, float eps,
                   float* sum_out, float* y, float* mean_out, float* rstd_out) {
  float sum;
  const float* in = row_input_and_sum(cols, x, residual, sum_out, &sum);
  const float mean = sum / float(cols);
  const float var = lane_sum(cols, [&](int64_t j) {
                      float d = in[j] - mean;
                      return d * d;
                    }) /
                    float(cols);
  const float rstd = 1.0f / std::sqrt(var + eps);
  if (b) {
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) y[j] = (in[j] - mean) * rstd * w[j] + b[j];
  } else {
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) y[j] = (in[j] - mean) * rstd * w[j];
  }
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
}

void rmsnorm_row(int64_t cols, const float* x, const float* residual, const float* w, float eps, float* sum_out,
                 float* y, float* rstd_out) {
  const float* in = residual ? sum_out : x;
  float ss;
  if (residual) {
    ss = lane_sum(cols, [&](int64_t j) {
      float v = x[j] + residual[j];
      sum_out[j] = v;
      return v * v;
    });
  } else {
    ss = lane_sum(cols, [&](int64_t j) { return x[j] * x[j]; });
  }
  const float ms = ss / float(cols);
  const float rstd = 1.0f / std::sqrt(ms + eps);
#pragma omp simd
  for (int64_t j = 0; j < cols; ++j) y[j] = in[j] * rstd * w[j];
  if (rstd_out) *rstd_out = rstd;
}

// Per-thread column sums for the weight (and bias) gradients, two-level so thousands of rows still
// match a float64 reference: kFlushRows rows in float, then into a double accumulator that the
// caller reduces across threads in a fixed order (deterministic for a given thread count).
class ColumnGradients {
 public:
  ColumnGradients(int64_t cols, int64_t arrays, double* total) : cols_(cols), arrays_(arrays), total_(total) {
    block_.assign(static_cast<size_t>(cols * arrays), 0.0f);
  }
  float* block(int64_t array) { return block_.data() + array * cols_; }
  // Call after each row; flushes every kFlushRows rows and at the end (last = true).
  void row_done(bool last) {
    if (++rows_ < kFlushRows && !last) return;
    rows_ = 0;
    const int64_t n = cols_ * arrays_;
    float* blk = block_.data();
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      total_[j] += double(blk[j]);
      blk[j] = 0.0f;
    }
  }

 private:
  int64_t cols_, arrays_;
  double* total_;
  std::vector<float> block_;
  int64_t rows_ = 0;
};

// Runs row_fn(row, grads) over all rows split statically across threads, each thread with its own
// ColumnGradients of `arrays` column vectors; then out[a][j] = sum over threads (in thread order).
template <typename RowFn>
void rows_with_column_gradients(int64_t rows, int64_t cols, int64_t arrays, float* const* out, RowFn&& row_fn) {
  const int threads = rows * cols > kParallelMin ? std::max(1, num_threads()) : 1;
  const int64_t stride = cols * arrays;
  std::vector<double> partial(static_cast<size_t>(stride * threads), 0.0);
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t r0 = rows * t / team, r1 = rows * (t + 1) / team;
    ColumnGradients grads(cols, arrays, partial.data() + t * stride);
    for (int64_t r = r0; r < r1; ++r) {
      row_fn(r, grads);
      grads.row_done(r + 1 == r1);
    }
  }
  for (int64_t a = 0; a < arrays; ++a) {
    if (!out[a]) continue;
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0.0;
      for (int64_t t = 0; t < threads; ++t) s += partial[size_t(t * stride + a * cols + j)];
      out[a][j] = float(s);
    }
  }
}

}  // namespace

void CpuBackend::layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                                   const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd) {
  auto one_row = [&](int64_t r) {
    const int64_t off = r * cols;
    layernorm_row(cols, x + off, residual ? residual + off : nullptr, w, b, eps, residual ? sum_out + off : nullptr,
                  y + off, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr);
  };
  // a small call (decoding) skips the parallel region altogether: a false `if` clause still costs a
  // libgomp team set-up
  if (rows * cols <= kParallelMin) {
    for (int64_t r = 0; r < rows; ++r) one_row(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) one_row(r);
}

// With xhat = (x - mean) * rstd and g = dy * w:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dw = sum_rows dy * xhat,  db = sum_rows dy.
void CpuBackend::layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                                   const float* mean, const float* rstd, float* dx, float* dw, float* db) {
  float* out[2] = {dw, db};
  const float inv_cols = 1.0f / float(std::max<int64_t>(cols, 1));
  rows_with_column_gradients(rows, cols, 2, out, [&](int64_t r, ColumnGradients& grads) {
    const int64_t off = r * cols;
    const float* dyr = dy + off;
    const float* xr = x + off;
    const float mu = mean[r], rs = rstd[r];
    float* dw_blk = grads.block(0);
    float* db_blk = grads.block(1);
    alignas(64) float acc_g[kLanes] = {};
    alignas(64) float acc_gx[kLanes] = {};
    // One pass: the two row sums and the column gradients.
    auto step = [&](int64_t j, int64_t k) {
      float xhat = (xr[j] - mu) * rs;
      float g = dyr[j] * w[j];
      acc_g[k] += g;
      acc_gx[k] += g * xhat;
      dw_blk[j] += dyr[j] * xhat;
      db_blk[j] += dyr[j];
    };
    cpu::for_each_lane(cols, step);
    const float mean_g = sum_lanes(acc_g) * inv_cols;
    const float mean_gx = sum_lanes(acc_gx) * inv_cols;
    float* dxr = dx + off;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      float xhat = (xr[j] - mu) * rs;
      dxr[j] = rs * (dyr[j] * w[j] - mean_g - xhat * mean_gx);
    }
  });
}

void CpuBackend::rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                                 float eps, float* sum_out, float* y, float* rstd) {
  auto one_row = [&](int64_t r) {
    const int64_t off = r * cols;
    rmsnorm_row(cols, x + off, residual ? residual + off : nullptr, w, eps, residual ? sum_out + off : nullptr,
                y + off, rstd ? rstd + r : nullptr);
  };
  if (rows * cols <= kParallelMin) {  // as in layernorm_forward
    for (int64_t r = 0; r < rows; ++r) one_row(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) one_row(r);
}

// With xhat = x * rstd and g = dy * w:  dx = rstd * (g - xhat * mean(g * xhat)),  dw = sum_rows dy * xhat.
void CpuBackend::rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                                  const float* rstd, float* dx, float* dw) {
  float* out[1] = {dw};
  const float inv_cols = 1.0f / float(std::max<int64_t>(cols, 1));
  rows_with_column_gradients(rows, cols, 1, out, [&](int64_t r, ColumnGradients& grads) {
    const int64_t off = r * cols;
    const float* dyr = dy + off;
    const float* xr = x + off;
    const float rs = rstd[r];
    float* dw_blk = grads.block(0);
    alignas(64) float acc_gx[kLanes] = {};
    auto step = [&](int64_t j, int64_t k) {
      float xhat = xr[j] * rs;
      acc_gx[k] += dyr[j] * w[j] * xhat;
      dw_blk[j] += dyr[j] * xhat;
    };
    cpu::for_each_lane(cols, step);
    const float mean_gx = sum_lanes(acc_gx) * inv_cols;
    float* dxr = dx + off;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dxr[j] = rs * (dyr[j] * w[j] - xr[j] * rs * mean_gx);
  });
}

}  // namespace ld
