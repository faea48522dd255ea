#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"

namespace ld {

// Sums accumulate in double: a bias gradient sums thousands of rows and must still match a
// float64 reference to 1e-4 relative.
void CpuBackend::reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out) {
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * n > (1 << 15))
    for (int64_t o = 0; o < outer; ++o) {
      const float* row = x + o * n;
      double acc = 0.0;
#pragma omp simd reduction(+ : acc)
      for (int64_t r = 0; r < n; ++r) acc += row[r];
      out[o] = float(acc);
    }
    return;
  }
  constexpr int64_t kChunk = 256;  // columns per task: a double accumulator block stays in L1
  int64_t chunks = (inner + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static) if (outer * n * inner > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t i0 = c * kChunk, len = std::min(kChunk, inner - i0);
      double acc[kChunk] = {};
      for (int64_t r = 0; r < n; ++r) {
        const float* row = x + (o * n + r) * inner + i0;
#pragma omp simd
        for (int64_t i = 0; i < len; ++i) acc[i] += row[i];
      }
      for (int64_t i = 0; i < len; ++i) out[o * inner + i0 + i] = float(acc[i]);
    }
  }
}

void CpuBackend::argmax(int64_t rows, int64_t cols, const float* x, int64_t* out) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; ++c) {
      if (std::isnan(row[best])) break;  // NaN wins, as in PyTorch
      if (row[c] > row[best] || std::isnan(row[c])) best = c;
    }
    out[r] = best;
  }
}

void CpuBackend::topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    std::vector<int64_t> idx(static_cast<size_t>(cols));
    std::iota(idx.begin(), idx.end(), 0);
    // NaN first (torch.topk ranks it above every number), then largest first; ties, and NaNs among
    // themselves, by lower index: a total order, so results are deterministic (CUDA's is the same)
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int64_t a, int64_t b) {
      const bool na = std::isnan(row[a]), nb = std::isnan(row[b]);
      if (na || nb) return na && (!nb || a < b);
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t j = 0; j < k; ++j) {
      values[r * k + j] = row[idx[size_t(j)]];
      indices[r * k + j] = idx[size_t(j)];
    }
  }
}

void CpuBackend::scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src,
                                  float* dst) {
#pragma omp parallel for schedule(static) if (rows * k > (1 << 15))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) dst[r * cols + index[r * k + j]] += src[r * k + j];
}

}  // namespace ld
