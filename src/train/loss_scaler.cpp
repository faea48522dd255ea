#include "train/loss_scaler.hpp"

#include <cmath>
#include <string>

#include "ops/ops.hpp"
#include "train/grad_clip.hpp"

namespace ld::train {
namespace {

void check_options(double scale, double growth_factor, double backoff_factor, int64_t growth_interval,
                   const char* where) {
  LD_CHECK(std::isfinite(scale) && scale > 0, where, ": scale must be finite and > 0, got ", scale);
  LD_CHECK(std::isfinite(growth_factor) && growth_factor > 1, where, ": growth_factor must be > 1, got ",
           growth_factor);
  LD_CHECK(backoff_factor > 0 && backoff_factor < 1, where, ": backoff_factor must be in (0, 1), got ",
           backoff_factor);
  LD_CHECK(growth_interval > 0, where, ": growth_interval must be > 0, got ", growth_interval);
}

}  // namespace

LossScaler::LossScaler(LossScalerOptions o)
    : scale_(o.init_scale),
      growth_factor_(o.growth_factor),
      backoff_factor_(o.backoff_factor),
      growth_interval_(o.growth_interval),
      enabled_(o.enabled) {
  check_options(scale_, growth_factor_, backoff_factor_, growth_interval_, "loss scaler");
}

Tensor LossScaler::scaled_loss(const Tensor& loss) const { return enabled_ ? ops::scale(loss, scale_) : loss; }

bool LossScaler::unscale(const std::vector<Tensor>& params) {
  if (!enabled_) return true;
  LD_CHECK(!unscaled_, "loss scaler: unscale called twice in one step (call update() after each step)");
  unscaled_ = true;
  // Multiply by the float32 reciprocal, as GradScaler does (scale is a power of two by default, so exact).
  scale_grads(params, double(1.0f / float(scale_)));
  if (!std::isfinite(grad_norm(params))) found_inf_ = true;
  return !found_inf_;
}

bool LossScaler::update() {
  if (!enabled_) return false;
  LD_CHECK(unscaled_ || found_inf_, "loss scaler: update() called with no unscale() in this step");
  const bool skipped = found_inf_;
  // torch keeps the scale in a float32 tensor, and does not grow it past float32's range.
  if (found_inf_) {
    scale_ = double(float(scale_ * backoff_factor_));
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == growth_interval_) {
    const float grown = float(scale_ * growth_factor_);
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  }
  found_inf_ = false;
  unscaled_ = false;
  return skipped;
}

nlohmann::json LossScaler::state_dict() const {
  if (!enabled_) return nlohmann::json::object();
  return {{"scale", scale_},
          {"growth_factor", growth_factor_},
          {"backoff_factor", backoff_factor_},
          {"growth_interval", growth_interval_},
          {"_growth_tracker", growth_tracker_}};
}

void LossScaler::load_state_dict(const nlohmann::json& state) {
  LD_CHECK(state.is_object(), "loss scaler state: expected a JSON object, got ", state.dump());
  if (!enabled_) return;
  LD_CHECK(!state.empty(), "loss scaler state: empty (saved with loss scaling disabled) but loss scaling is enabled");
  auto number = [&](const char* key) {
    LD_CHECK(state.contains(key) && state[key].is_number(), "loss scaler state: '", key,
             "' missing or not a number in ", state.dump());
    return state[key];
  };
  const double scale = number("scale").get<double>();
  const double growth = number("growth_factor").get<double>();
  const double backoff = number("backoff_factor").get<double>();
  LD_CHECK(number("growth_interval").is_number_integer() && number("_growth_tracker").is_number_integer(),
           "loss scaler state: growth_interval and _growth_tracker must be integers, got ", state.dump());
  const int64_t interval = state["growth_interval"].get<int64_t>();
  const int64_t tracker = state["_growth_tracker"].get<int64_t>();
  check_options(scale, growth, backoff, interval, "loss scaler state");
  LD_CHECK(tracker >= 0 && tracker < interval, "loss scaler state: _growth_tracker must be in [0, growth_interval), got ",
           tracker);
  scale_ = scale, growth_factor_ = growth, backoff_factor_ = backoff, growth_interval_ = interval;
  growth_tracker_ = tracker;
  found_inf_ = false, unscaled_ = false;
}

}  // namespace ld::train
