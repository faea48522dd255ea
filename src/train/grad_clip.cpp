#include "train/grad_clip.hpp"

#include <cmath>

#include "autograd/grad_mode.hpp"
#include "ops/ops.hpp"

namespace ld::train {

double grad_norm(const std::vector<Tensor>& params) {
  double total = 0.0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    const Tensor c = g.to(kCPU).to(DType::f32).contiguous();
    const float* x = c.data<float>();
    const int64_t n = c.numel();
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
    total += sum;
  }
  return std::sqrt(total);
}

void scale_grads(const std::vector<Tensor>& params, double factor) {
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (g.defined()) g.copy_(ops::scale(g, factor));
  }
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  LD_CHECK(std::isfinite(max_norm) && max_norm > 0, "clip_grad_norm: max_norm must be finite and > 0, got ",
           max_norm);
  const double norm = grad_norm(params);
  clip_grads_to(params, norm, max_norm);
  return norm;
}

void clip_grads_to(const std::vector<Tensor>& params, double norm, double max_norm) {
  if (!std::isfinite(norm)) return;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) scale_grads(params, coef);
}

}  // namespace ld::train
