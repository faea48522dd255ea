#include "train/sgd.hpp"

#include <cmath>

#include "autograd/grad_mode.hpp"
#include "ops/ops.hpp"

namespace ld::train {

Sgd::Sgd(std::vector<ParamGroup> groups, SgdOptions options) : options_(options) {
  LD_CHECK(std::isfinite(options.lr) && options.lr >= 0, "SGD: lr must be finite and >= 0, got ", options.lr);
  LD_CHECK(options.momentum >= 0, "SGD: momentum must be >= 0, got ", options.momentum);
  LD_CHECK(!options.nesterov || options.momentum > 0, "SGD: nesterov needs momentum > 0, got momentum ",
           options.momentum);
  for (auto& group : groups) {
    LD_CHECK(group.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", group.weight_decay);
    for (auto& p : group.params) {
      check_dtype(p, DType::f32, "SGD", "parameter");
      Tensor buffer = options.momentum > 0 ? zeros(p.shape(), DType::f32, p.device()) : Tensor();
      slots_.push_back({p, buffer, group.weight_decay});
    }
  }
}

// Written with ops rather than a backend kernel so it runs on every backend; SGD is not the hot
// optimizer (AdamW is, and has its fused kernel).
void Sgd::step(float grad_scale) {
  autograd::NoGradGuard no_grad;
  ++step_;
  for (Slot& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    Tensor d = grad_scale == 1.0f ? g : ops::scale(g, grad_scale);
    if (s.weight_decay != 0.0f) d = ops::add(d, ops::scale(s.param.detach(), s.weight_decay));
    if (s.momentum_buffer.defined()) {
      s.momentum_buffer.copy_(ops::add(ops::scale(s.momentum_buffer, options_.momentum), d));
      d = options_.nesterov ? ops::add(d, ops::scale(s.momentum_buffer, options_.momentum)) : s.momentum_buffer;
    }
    s.param.copy_(ops::sub(s.param.detach(), ops::scale(d, options_.lr)));
  }
}

std::vector<Sgd::ParamState> Sgd::state() const {
  std::vector<ParamState> out;
  for (const Slot& s : slots_) out.push_back({s.param, s.momentum_buffer});
  return out;
}

void Sgd::set_steps(int64_t steps) {
  LD_CHECK(steps >= 0, "SGD: the step count must be >= 0, got ", steps);
  step_ = steps;
}

void Sgd::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

}  // namespace ld::train
