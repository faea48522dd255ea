// Rotary position embedding. The angle pos * theta^(-2i/rotary_dim) is formed and turned into
// cos/sin in double: at positions in the tens of thousands a float angle is already off by more
// than the rotation between neighbouring positions. Each position computes its cos/sin table once
// (once for the whole batch when positions are [T]) and applies it to every head.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "core/error.hpp"

namespace ld {

namespace {

// Rotates the rotary part of one head vector: pairs (x[lo], x[hi]) by the angle whose cos and sin
// are c[i], s[i]; (lo, hi) is (2i, 2i+1) when interleaved, (i, i + half) otherwise.
template <bool Interleaved>
void rotate_head(const float* x, float* y, int64_t half, const float* c, const float* s) {
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) {
    int64_t lo = Interleaved ? 2 * i : i, hi = Interleaved ? 2 * i + 1 : i + half;
    float x0 = x[lo], x1 = x[hi];
    y[lo] = x0 * c[i] - x1 * s[i];
    y[hi] = x0 * s[i] + x1 * c[i];
  }
}

// cos and sin of pos * inv_freq[i] into cs[i] and cs[half + i]; sign -1 rotates backwards.
void angle_table(double pos, const std::vector<double>& inv_freq, double sign, float* cs) {
  const size_t half = inv_freq.size();
  for (size_t i = 0; i < half; ++i) {
    double angle = pos * inv_freq[i];
    cs[i] = float(std::cos(angle));
    cs[half + i] = float(sign * std::sin(angle));
  }
}

}  // namespace

void CpuBackend::rope(const RopeArgs& a, const float* x, float* y) {
  LD_ASSERT(a.rotary_dim >= 0 && a.rotary_dim <= a.head_dim && a.rotary_dim % 2 == 0, "rope: rotary_dim ",
            a.rotary_dim, " must be even and at most head_dim ", a.head_dim);
  const int64_t half = a.rotary_dim / 2, rows = a.batch * a.seq, D = a.head_dim;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(a.theta, -double(2 * i) / double(a.rotary_dim));
  const double sign = a.inverse ? -1.0 : 1.0;
  const bool parallel = rows * a.heads * D > (1 << 15);

  // Positions shared by the whole batch: one table serves every sequence.
  std::vector<float> shared;
  if (a.pos_batch_stride == 0 && a.batch > 1) {
    shared.resize(static_cast<size_t>(a.seq * 2 * half));
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t t = 0; t < a.seq; ++t)
      angle_table(double(a.positions[t]), inv_freq, sign, shared.data() + t * 2 * half);
  }

#pragma omp parallel if (parallel)
  {
    std::vector<float> own(static_cast<size_t>(2 * half));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / a.seq, t = r % a.seq;
      const float* cs = own.data();
      if (shared.empty())
        angle_table(double(a.positions[b * a.pos_batch_stride + t]), inv_freq, sign, own.data());
      else
        cs = shared.data() + t * 2 * half;
      for (int64_t h = 0; h < a.heads; ++h) {
        const float* xh = x + (r * a.heads + h) * D;
        float* yh = y + (r * a.heads + h) * D;
        if (a.layout == RopeLayout::interleaved)
          rotate_head<true>(xh, yh, half, cs, cs + half);
        else
          rotate_head<false>(xh, yh, half, cs, cs + half);
        if (xh != yh)
          for (int64_t d = a.rotary_dim; d < D; ++d) yh[d] = xh[d];
      }
    }
  }
}

}  // namespace ld
