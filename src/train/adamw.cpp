#include "train/adamw.hpp"

#include <algorithm>
#include <utility>

#include "backend/backend.hpp"
#include "ops/ops.hpp"

namespace ld::train {

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options) : options_(options) {
  for (auto& group : groups) {
    for (auto& p : group.params) {
      check_dtype(p, DType::f32, "AdamW", "parameter");
      LD_CHECK(p.is_contiguous(), "AdamW: parameters must be contiguous, got strides ", shape_str(p.strides()));
      slots_.push_back({p, zeros(p.shape(), DType::f32, p.device()), zeros(p.shape(), DType::f32, p.device()),
                        group.weight_decay});
    }
  }
}

void AdamW::step(float grad_scale) {
  ++step_;
  // One call per backend with every parameter it holds: a GPU updates them in a few launches.
  std::vector<std::pair<Backend*, std::vector<AdamWArgs>>> per_backend;
  std::vector<Tensor> contiguous_grads;  // alive until the calls below
  for (Slot& s : slots_) {
    Tensor g = s.param.grad();
    const ops::WorkingWeights::Target copy = working_ != nullptr ? working_->target(s.param, step_) : ops::WorkingWeights::Target{};
    if (!g.defined()) {
      if (copy.copy) s.param.backend().round_bf16(s.param.numel(), s.param.data<float>(), copy.copy, copy.key, copy.counter);
      continue;  // the copy follows the step's rounding, so refresh(step) after a resume gives the same bits
    }
    contiguous_grads.push_back(g.contiguous());
    AdamWArgs a;
    a.n = s.param.numel();
    a.param = s.param.data<float>();
    a.grad = contiguous_grads.back().data<float>();
    a.m = s.m.data<float>();
    a.v = s.v.data<float>();
    a.lr = options_.lr, a.beta1 = options_.beta1, a.beta2 = options_.beta2, a.eps = options_.eps;
    a.weight_decay = s.weight_decay;
    a.grad_scale = grad_scale;
    a.step = step_;
    a.param_bf16 = copy.copy, a.rounding_key = copy.key, a.rounding_counter = copy.counter;
    Backend* backend = &s.param.backend();
    auto it = std::find_if(per_backend.begin(), per_backend.end(), [&](const auto& e) { return e.first == backend; });
    if (it == per_backend.end()) it = per_backend.insert(per_backend.end(), {backend, {}});
    it->second.push_back(a);
  }
  for (auto& [backend, buffers] : per_backend) backend->adamw_step(buffers);
  if (working_ != nullptr) working_->updated(step_);
}

std::vector<AdamW::ParamState> AdamW::state() const {
  std::vector<ParamState> out;
  for (const Slot& s : slots_) out.push_back({s.param, s.m, s.v});
  return out;
}

void AdamW::set_steps(int64_t steps) {
  LD_CHECK(steps >= 0, "AdamW: the step count must be >= 0, got ", steps);
  step_ = steps;
}

void AdamW::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

}  // namespace ld::train
