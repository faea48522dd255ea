#pragma once
// Dynamic loss scaling for fp16 training, torch.cuda.amp.GradScaler semantics:
//   - the loss is multiplied by scale() before backward, so small fp16 gradients do not flush to 0;
//   - unscale(params) divides the gradients by the scale in place and looks for inf/nan. Call it
//     once per step, before gradient clipping (clipping must see the true gradients);
//   - when a gradient was non-finite, skip the optimizer step (unscale returns false,
//     step_skipped() reports it);
//   - update() ends the step: on overflow scale *= backoff_factor and the growth tracker resets; otherwise
//     the tracker counts the finite step, and after growth_interval finite steps in a row
//     scale *= growth_factor and the tracker resets.
// The state (scale, growth tracker, factors) round-trips through JSON with GradScaler.state_dict()'s
// keys, for resume. Disabled (bf16/fp32 training), every call is a no-op and scale() is 1.
//
// A step with gradient accumulation over k micro-batches: for each micro-batch
// scaled_loss(loss / k).backward(); then unscale(params) once; if it returned true, clip and
// optimizer.step(); then update(). (The 1/k makes the accumulated gradient the mean over the
// micro-batches, as one big batch would give.)
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/tensor.hpp"

namespace ld::train {

struct LossScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerOptions options = {});

  double scale() const { return enabled_ ? scale_ : 1.0; }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool enabled() const { return enabled_; }

  // loss * scale() (differentiable), to call backward on.
  Tensor scaled_loss(const Tensor& loss) const;

  // Divides every gradient by scale() in place (once per step: a second call before update() throws)
  // and returns true when all of them are finite.
  bool unscale(const std::vector<Tensor>& params);
  // Records an overflow found some other way (for example an inf loss whose backward was not run).
  void record_overflow() { found_inf_ = true; }
  // True when this step found a non-finite gradient: the optimizer step must be skipped.
  bool step_skipped() const { return found_inf_; }

  // Ends the step: adjusts the scale from this step's verdict and readies the next step. Returns true
  // when the step was skipped (an overflow), for the log. Throws when neither unscale() nor
  // record_overflow() was called this step (as GradScaler.update asserts).
  bool update();

  // {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"}, as torch's
  // GradScaler.state_dict(); empty when disabled (as torch's).
  nlohmann::json state_dict() const;
  // Restores a state_dict(); throws naming the key when one is missing or invalid.
  void load_state_dict(const nlohmann::json& state);

 private:
  double scale_;
  double growth_factor_, backoff_factor_;
  int64_t growth_interval_;
  bool enabled_;
  int64_t growth_tracker_ = 0;
  bool found_inf_ = false;
  bool unscaled_ = false;
};

}  // namespace ld::train
