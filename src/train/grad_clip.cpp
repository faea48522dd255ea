#include "train/grad_clip.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.hpp"
#include "ops/ops.hpp"

namespace ld::train {

namespace {

double host_sum_of_squares(const Tensor& g) {
  const Tensor c = g.to(DType::f32).contiguous();
  const float* x = c.data<float>();
  const int64_t n = c.numel();
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  return sum;
}

}  // namespace

// Gradients on a device are reduced there, into one f32 scalar per device read back once: copying
// them to the host would move every gradient over the bus each step (GPT-2 124M: 500 MB).
double grad_norm(const std::vector<Tensor>& params) {
  autograd::NoGradGuard no_grad;
  double total = 0.0;
  std::vector<Tensor> device_sums;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (g.device() == kCPU) {
      total += host_sum_of_squares(g);
      continue;
    }
    const Tensor g32 = g.to(DType::f32);
    Tensor squares = ops::mul(g32, g32);
    // rows first: a whole-tensor sum is one thread block on a GPU, a sum over the last dim one per row
    if (squares.dim() > 1) squares = ops::sum(squares, {squares.dim() - 1});
    squares = ops::sum(squares);
    auto same_device = [&](const Tensor& t) { return t.device() == g.device(); };
    auto it = std::find_if(device_sums.begin(), device_sums.end(), same_device);
    if (it == device_sums.end())
      device_sums.push_back(squares);
    else
      *it = ops::add(*it, squares);
  }
  for (const Tensor& s : device_sums) total += double(s.to(kCPU).to_vector<float>()[0]);
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
