#include <cmath>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"

namespace ld {

namespace {

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
  });
}

}  // namespace

void CpuBackend::adamw_step(std::span<const AdamWArgs> buffers) {
  for (const AdamWArgs& a : buffers) adamw_one(a);
}

}  // namespace ld
