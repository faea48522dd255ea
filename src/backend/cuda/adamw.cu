// One fused AdamW pass (cpu/adamw.cpp): the bias corrections are computed once on the host, as the
// CPU does, so both backends use the same constants.
#include <cmath>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

void CudaBackend::adamw_step(const AdamWArgs& a) {
  const float bc1 = 1.0f - std::pow(a.beta1, float(a.step));
  const float bc2 = 1.0f - std::pow(a.beta2, float(a.step));
  const float step_size = a.lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2), decay = 1.0f - a.lr * a.weight_decay;
  const float beta1 = a.beta1, beta2 = a.beta2, eps = a.eps, grad_scale = a.grad_scale;
  float *p = a.param, *m = a.m, *v = a.v;
  const float* grad = a.grad;
  cuda::launch_map(stream(), a.n, [=] __device__(int64_t i) {
    const float g = grad[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  });
}

}  // namespace ld
