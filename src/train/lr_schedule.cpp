#include "train/lr_schedule.hpp"

#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace ld::train {

void validate(const LrSchedule& s) {
  LD_CHECK(std::isfinite(s.lr) && s.lr >= 0, "lr schedule: lr must be finite and >= 0, got ", s.lr);
  LD_CHECK(s.warmup_steps >= 0, "lr schedule: warmup_steps must be >= 0, got ", s.warmup_steps);
  LD_CHECK(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1, "lr schedule: min_lr_ratio must be in [0, 1], got ",
           s.min_lr_ratio);
  if (s.decay != LrDecay::constant)
    LD_CHECK(s.max_steps > s.warmup_steps, "lr schedule: max_steps (", s.max_steps,
             ") must be greater than warmup_steps (", s.warmup_steps, ") for ", lr_decay_name(s.decay),
             " decay");
}

double lr_at(const LrSchedule& s, int64_t step) {
  validate(s);
  LD_CHECK(step >= 0, "lr schedule: step must be >= 0 (step 0 is the first update), got ", step);
  if (step < s.warmup_steps) return s.lr * double(step + 1) / double(s.warmup_steps);
  if (s.decay == LrDecay::constant) return s.lr;
  const double min_lr = s.min_lr_ratio * s.lr;
  if (step >= s.max_steps) return min_lr;
  const double ratio = double(step - s.warmup_steps) / double(s.max_steps - s.warmup_steps);
  const double coeff = s.decay == LrDecay::cosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * ratio)) : 1.0 - ratio;
  return min_lr + coeff * (s.lr - min_lr);
}

LrDecay parse_lr_decay(std::string_view name) {
  if (name == "cosine") return LrDecay::cosine;
  if (name == "linear") return LrDecay::linear;
  if (name == "constant") return LrDecay::constant;
  LD_FAIL("lr schedule: unknown decay '", std::string(name), "' (choose cosine, linear or constant)");
}

std::string lr_decay_name(LrDecay decay) {
  switch (decay) {
    case LrDecay::cosine: return "cosine";
    case LrDecay::linear: return "linear";
    case LrDecay::constant: return "constant";
  }
  LD_ASSERT(false, "unknown LrDecay");
  return "";
}

}  // namespace ld::train
