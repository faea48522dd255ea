#pragma once
// Learning-rate schedules for pretraining: linear warmup, then cosine, linear or no decay down to a
// floor min_lr = min_lr_ratio * lr. The step convention is nanoGPT's get_lr(it):
//   - `step` counts optimizer updates already taken: step 0 is the first update.
//   - warmup (step < warmup_steps): lr * (step + 1) / warmup_steps, so the first update already has a
//     non-zero rate and the last warmup step (warmup_steps - 1) reaches the full lr.
//   - decay (warmup_steps <= step <= max_steps): ratio = (step - warmup_steps) / (max_steps - warmup_steps)
//       cosine:   min_lr + 0.5 * (1 + cos(pi * ratio)) * (lr - min_lr)
//       linear:   min_lr + (1 - ratio) * (lr - min_lr)
//       constant: lr (min_lr is not used; the rate never decays)
//   - after max_steps the rate stays at min_lr (cosine, linear) or lr (constant).
// Use: before optimizer step number s (0-based), optimizer.set_lr(lr_at(schedule, s)). This is the
// same as torch's LambdaLR(optimizer, lambda s: lr_at(schedule, s) / lr) stepped once after each update.
#include <cstdint>
#include <string>
#include <string_view>

namespace ld::train {

enum class LrDecay { cosine, linear, constant };

struct LrSchedule {
  double lr = 6e-4;             // peak rate, reached at the end of warmup
  int64_t warmup_steps = 0;     // 0: start at the peak
  int64_t max_steps = 0;        // the step at which the decay reaches min_lr
  double min_lr_ratio = 0.1;    // min_lr = min_lr_ratio * lr (nanoGPT: 6e-5 / 6e-4)
  LrDecay decay = LrDecay::cosine;
};

// Throws on a schedule a user could not have meant: negative lr or steps, min_lr_ratio outside [0, 1],
// max_steps <= warmup_steps for a decaying schedule.
void validate(const LrSchedule& schedule);

// The rate for 0-based update `step` (step >= 0). Validates the schedule.
double lr_at(const LrSchedule& schedule, int64_t step);

// "cosine", "linear" or "constant" (configs and the command line); throws naming the choices otherwise.
LrDecay parse_lr_decay(std::string_view name);
std::string lr_decay_name(LrDecay decay);

}  // namespace ld::train
