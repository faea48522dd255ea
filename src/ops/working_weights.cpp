#include "ops/working_weights.hpp"

#include <algorithm>
#include <utility>

#include "core/rng.hpp"

namespace ld::ops {

namespace {

// The live WorkingWeights, for the products' lookups (usually one: the training loop's).
std::mutex g_live_mutex;
std::vector<WorkingWeights*>& live() {
  static std::vector<WorkingWeights*> all;
  return all;
}

bool listable(const Tensor& p) { return p.defined() && p.dtype() == DType::f32 && p.is_contiguous(); }

}  // namespace

WorkingWeights::WorkingWeights(const std::vector<Tensor>& params, bool stochastic, uint64_t seed, int64_t step)
    : stochastic_(stochastic), seed_(seed), step_(step) {
  uint64_t counter = 0;
  for (const Tensor& p : params) {
    if (!listable(p) || find(p) != nullptr) continue;
    entries_.push_back({p, Tensor(), counter});
    counter += (uint64_t(p.numel()) + 3) / 4;
  }
  std::lock_guard lock(g_live_mutex);
  live().push_back(this);
}

WorkingWeights::~WorkingWeights() {
  std::lock_guard lock(g_live_mutex);
  std::erase(live(), this);
}

int64_t WorkingWeights::step() const {
  std::lock_guard lock(mutex_);
  return step_;
}

uint64_t WorkingWeights::key(int64_t step) const {
  if (!stochastic_) return 0;
  const std::array<uint32_t, 4> r = philox4x32(seed_, 1, uint64_t(step));  // counter_hi 1: apart from draws
  return (uint64_t(r[0]) << 32 | r[1]) | 1;                                // never 0, which means nearest
}

void WorkingWeights::round_into(const Entry& e, int64_t step) const {
  e.master.backend().round_bf16(e.master.numel(), e.master.data<float>(), static_cast<uint16_t*>(e.copy.raw()),
                                key(step), e.counter);
}

WorkingWeights::Entry* WorkingWeights::find(const Tensor& param) {
  return const_cast<Entry*>(std::as_const(*this).find(param));
}

const WorkingWeights::Entry* WorkingWeights::find(const Tensor& param) const {
  if (!listable(param)) return nullptr;
  for (const Entry& e : entries_)
    if (e.master.raw() == param.raw() && e.master.numel() == param.numel() && e.master.device() == param.device())
      return &e;
  return nullptr;
}

void WorkingWeights::refresh(int64_t step) {
  std::lock_guard lock(mutex_);
  step_ = step;
  for (const Entry& e : entries_)
    if (e.copy.defined()) round_into(e, step);
}

WorkingWeights::Target WorkingWeights::target(const Tensor& param, int64_t step) const {
  std::lock_guard lock(mutex_);
  const Entry* e = find(param);
  if (e == nullptr || !e->copy.defined()) return {};
  return Target{static_cast<uint16_t*>(e->copy.raw()), key(step), e->counter};
}

void WorkingWeights::updated(int64_t step) {
  std::lock_guard lock(mutex_);
  step_ = step;
}

Tensor WorkingWeights::copy_of(const Tensor& param) {
  std::lock_guard lock(mutex_);
  Entry* e = find(param);
  if (e == nullptr) return Tensor();
  if (!e->copy.defined()) {
    e->copy = empty(e->master.shape(), DType::bf16, e->master.device());
    round_into(*e, step_);
  }
  return e->copy;
}

int64_t WorkingWeights::copy_bytes() const {
  std::lock_guard lock(mutex_);
  int64_t bytes = 0;
  for (const Entry& e : entries_)
    if (e.copy.defined()) bytes += int64_t(e.copy.nbytes());
  return bytes;
}

namespace detail {

const uint16_t* working_weight(const Tensor& weight, ComputePrecision precision) {
  if (precision != ComputePrecision::bf16) return nullptr;
  std::lock_guard lock(g_live_mutex);
  for (auto it = live().rbegin(); it != live().rend(); ++it)  // the newest first
    if (Tensor copy = (*it)->copy_of(weight); copy.defined()) return static_cast<const uint16_t*>(copy.raw());
  return nullptr;
}

}  // namespace detail

}  // namespace ld::ops
