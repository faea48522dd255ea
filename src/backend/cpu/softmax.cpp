// Softmax and log-softmax over the last dim. Rows are processed in place in cache: a max pass, an
// exp-and-sum pass, a scale pass.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/vec_math.hpp"

namespace ld {

namespace {

using cpu::exp_approx;
using cpu::lane_sum;
using cpu::row_max;

constexpr int64_t kParallelMin = int64_t(1) << 15;

void softmax_row(int64_t n, const float* x, float* y) {
  const float m = row_max(n, x);
  const float s = lane_sum(n, [&](int64_t j) {
    float e = exp_approx(x[j] - m);
    y[j] = e;
    return e;
  });
  const float inv = 1.0f / s;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] *= inv;
}

void log_softmax_row(int64_t n, const float* x, float* y) {
  const float m = row_max(n, x);
  const float s = lane_sum(n, [&](int64_t j) { return exp_approx(x[j] - m); });
  const float log_s = std::log(s);
  // (x - m) first: exact for x near m, where m + log(s) would round at the scale of m
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - log_s;
}

}  // namespace

void CpuBackend::softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    if (log)
      log_softmax_row(cols, x + r * cols, y + r * cols);
    else
      softmax_row(cols, x + r * cols, y + r * cols);
  }
}

// softmax: dx = y * (dy - <dy, y>);  log_softmax: dx = dy - exp(y) * sum(dy).
void CpuBackend::softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* dyr = dy + r * cols;
    float* dxr = dx + r * cols;
    if (log) {
      const float s = lane_sum(cols, [&](int64_t j) { return dyr[j]; });
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) dxr[j] = dyr[j] - exp_approx(yr[j]) * s;
    } else {
      const float dot = lane_sum(cols, [&](int64_t j) { return dyr[j] * yr[j]; });
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) dxr[j] = yr[j] * (dyr[j] - dot);
    }
  }
}

}  // namespace ld
