#include <cmath>

#include "backend/cpu/cpu_backend.hpp"

namespace ld {

void CpuBackend::adamw_step(const AdamWArgs& a) {
  const float bc1 = 1.0f - std::pow(a.beta1, float(a.step));
  const float bc2 = 1.0f - std::pow(a.beta2, float(a.step));
  const float step_size = a.lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  const float decay = 1.0f - a.lr * a.weight_decay;
#pragma omp parallel for simd schedule(static) if (a.n > (1 << 15))
  for (int64_t i = 0; i < a.n; ++i) {
    float g = a.grad[i] * a.grad_scale;
    float m = a.beta1 * a.m[i] + (1.0f - a.beta1) * g;
    float v = a.beta2 * a.v[i] + (1.0f - a.beta2) * g * g;
    a.m[i] = m;
    a.v[i] = v;
    a.param[i] = a.param[i] * decay - step_size * m / (std::sqrt(v) * inv_sqrt_bc2 + a.eps);
  }
}

}  // namespace ld
