#include <cmath>

#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"

namespace ld {

void CpuBackend::random_fill(RandomKind kind, float* dst, int64_t n, uint64_t seed, uint64_t offset, float a, float b) {
  int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > (1 << 14))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    auto r = philox4x32(seed, 0, offset + uint64_t(blk));
    float out[4];
    if (kind == RandomKind::uniform) {
      for (int j = 0; j < 4; ++j) out[j] = a + (b - a) * uint_to_unit_float(r[j]);
    } else {
      // Box-Muller on two pairs; (0,1] for the log argument
      for (int j = 0; j < 4; j += 2) {
        float u1 = 1.0f - uint_to_unit_float(r[j]);
        float u2 = uint_to_unit_float(r[j + 1]);
        float radius = std::sqrt(-2.0f * std::log(u1));
        float angle = 6.28318530717958647692f * u2;
        out[j] = a + b * radius * std::cos(angle);
        out[j + 1] = a + b * radius * std::sin(angle);
      }
    }
    int64_t base = blk * 4;
    for (int j = 0; j < 4 && base + j < n; ++j) dst[base + j] = out[j];
  }
}

void CpuBackend::dropout(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n > (1 << 14))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    auto r = philox4x32(seed, 0, offset + uint64_t(blk));
    int64_t base = blk * 4;
    for (int j = 0; j < 4 && base + j < n; ++j)
      y[base + j] = uint_to_unit_float(r[j]) < p ? 0.0f : x[base + j] * keep_scale;
  }
}

}  // namespace ld
