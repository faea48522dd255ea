#include <cmath>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/half_rows.hpp"
#include "backend/cpu/parallel.hpp"
#include "core/rng.hpp"

namespace ld {

namespace {

// y[lo, hi) = x rounded to bf16 as Backend::round_bf16 says (element i: Philox lane i%4 at
// counter + i/4), whatever chunk [lo, hi) a thread got.
void round_bf16_range(const float* x, uint16_t* y, int64_t lo, int64_t hi, uint64_t key, uint64_t counter) {
  if (key == 0) return cpu::to_bf16_row(x + lo, hi - lo, y + lo);
  std::array<uint32_t, 4> r{};
  for (int64_t i = lo; i < hi; ++i) {
    if (i == lo || i % 4 == 0) r = philox4x32(key, 0, counter + uint64_t(i / 4));
    y[i] = f32_to_bf16_stochastic(x[i], r[size_t(i % 4)]);
  }
}

void adamw_one(const AdamWArgs& a) {
  const float bc1 = 1.0f - std::pow(a.beta1, float(a.step));
  const float bc2 = 1.0f - std::pow(a.beta2, float(a.step));
  const float step_size = a.lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float decay = 1.0f - a.lr * a.weight_decay;
  cpu::parallel_chunks(a.n, [&](int64_t lo, int64_t hi) {
    float* __restrict p = a.param;
    float* __restrict m = a.m;
    float* __restrict v = a.v;
    const float* __restrict grad = a.grad;
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      float g = grad[i] * a.grad_scale;
      float mi = a.beta1 * m[i] + (1.0f - a.beta1) * g;
      float vi = a.beta2 * v[i] + (1.0f - a.beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + a.eps);
    }
    // the working copy from the chunk just written, while it is in cache
    if (a.param_bf16 != nullptr) round_bf16_range(p, a.param_bf16, lo, hi, a.rounding_key, a.rounding_counter);
  });
}

}  // namespace

void CpuBackend::adamw_step(std::span<const AdamWArgs> buffers) {
  for (const AdamWArgs& a : buffers) adamw_one(a);
}

void CpuBackend::round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter) {
  cpu::parallel_chunks(n, [&](int64_t lo, int64_t hi) { round_bf16_range(x, y, lo, hi, key, counter); });
}

}  // namespace ld
