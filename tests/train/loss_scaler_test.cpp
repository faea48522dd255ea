#include "train/loss_scaler.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "ops/ops.hpp"
#include "test_util.hpp"

using namespace ld;

namespace {

// One step of the GradScaler protocol with a gradient that is finite or not.
bool run_step(train::LossScaler& scaler, bool overflow) {
  Tensor p = zeros({2}).set_requires_grad(true);
  const float g = overflow ? std::numeric_limits<float>::infinity() : float(scaler.scale());
  p.set_grad(from_vector(std::vector<float>{g, -g}, {2}));
  scaler.unscale({p});
  return scaler.update();
}

}  // namespace

TEST(LossScaler, DefaultsAreGradScalers) {
  train::LossScaler scaler;
  EXPECT_EQ(scaler.scale(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  const nlohmann::json state = scaler.state_dict();
  EXPECT_EQ(state["scale"], 65536.0);
  EXPECT_EQ(state["growth_factor"], 2.0);
  EXPECT_EQ(state["backoff_factor"], 0.5);
  EXPECT_EQ(state["growth_interval"], 2000);
  EXPECT_EQ(state["_growth_tracker"], 0);
}

// The scale after each step of a finite (F) / overflow (O) sequence, growth every 3 finite steps, worked
// out by hand from GradScaler's rule (torch.cuda.amp only runs on CUDA, so not checked against torch here).
TEST(LossScaler, ScaleSequenceOverFiniteAndOverflowSteps) {
  train::LossScaler scaler({.init_scale = 1024, .growth_factor = 2, .backoff_factor = 0.5, .growth_interval = 3,
                            .enabled = true});
  //                               F     F     F     O     F     F     O    F    F    F     F
  const bool overflow[] = {false, false, false, true, false, false, true, false, false, false, false};
  const double want_scale[] = {1024, 1024, 2048, 1024, 1024, 1024, 512, 512, 512, 1024, 1024};
  const int64_t want_tracker[] = {1, 2, 0, 0, 1, 2, 0, 1, 2, 0, 1};
  for (size_t i = 0; i < std::size(overflow); ++i) {
    EXPECT_EQ(run_step(scaler, overflow[i]), overflow[i]) << "step " << i << " reports its skip";
    EXPECT_EQ(scaler.scale(), want_scale[i]) << "after step " << i;
    EXPECT_EQ(scaler.growth_tracker(), want_tracker[i]) << "after step " << i;
  }
}

TEST(LossScaler, DefaultScaleDoublesAfter2000FiniteSteps) {
  train::LossScaler scaler;
  for (int i = 0; i < 1999; ++i) run_step(scaler, false);
  EXPECT_EQ(scaler.scale(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 1999);
  run_step(scaler, false);
  EXPECT_EQ(scaler.scale(), 131072.0);
  EXPECT_EQ(scaler.growth_tracker(), 0);
  run_step(scaler, true);
  EXPECT_EQ(scaler.scale(), 65536.0);
}

// Backward through scaled_loss gives gradients times the scale; unscale brings back the true ones.
TEST(LossScaler, UnscaleRecoversTheTrueGradient) {
  train::LossScaler scaler;
  Tensor p = from_vector(std::vector<float>{1, 2, 3}, {3}).set_requires_grad(true);
  Tensor c = from_vector(std::vector<float>{0.5f, -0.25f, 3e-6f}, {3});
  Tensor loss = ops::sum(ops::mul(p, c));
  scaler.scaled_loss(loss).backward();
  EXPECT_FLOAT_EQ(p.grad().to_vector<float>()[0], 0.5f * 65536);
  EXPECT_TRUE(scaler.unscale({p}));
  EXPECT_FALSE(scaler.step_skipped());
  EXPECT_EQ(p.grad().to_vector<float>(), c.to_vector<float>());  // power-of-two scale: exact
  EXPECT_FALSE(scaler.update());
}

TEST(LossScaler, OverflowIsReportedAndBacksOff) {
  train::LossScaler scaler;
  Tensor a = zeros({2}).set_requires_grad(true), b = zeros({1}).set_requires_grad(true);
  a.set_grad(from_vector(std::vector<float>{1, 2}, {2}));
  b.set_grad(from_vector(std::vector<float>{std::numeric_limits<float>::quiet_NaN()}, {1}));
  EXPECT_FALSE(scaler.unscale({a, b}));
  EXPECT_TRUE(scaler.step_skipped());
  EXPECT_TRUE(scaler.update());
  EXPECT_EQ(scaler.scale(), 32768.0);
  EXPECT_FALSE(scaler.step_skipped());  // the next step starts clean
}

TEST(LossScaler, StateRoundTripsThroughJsonAndResumesTheSameSequence) {
  train::LossScalerOptions options{.init_scale = 256, .growth_factor = 4, .backoff_factor = 0.25,
                                   .growth_interval = 5, .enabled = true};
  train::LossScaler original(options);
  for (bool o : {false, true, false, false}) run_step(original, o);
  const std::string saved = original.state_dict().dump();

  train::LossScaler resumed;  // defaults: everything comes from the file
  resumed.load_state_dict(nlohmann::json::parse(saved));
  EXPECT_EQ(resumed.scale(), original.scale());
  EXPECT_EQ(resumed.growth_tracker(), 2);
  for (bool o : {false, false, false, true, false}) {
    run_step(original, o);
    run_step(resumed, o);
    EXPECT_EQ(resumed.scale(), original.scale());
    EXPECT_EQ(resumed.growth_tracker(), original.growth_tracker());
  }
  EXPECT_EQ(resumed.state_dict(), original.state_dict());
}

TEST(LossScaler, RejectsBadStateAndMisuse) {
  train::LossScaler scaler;
  nlohmann::json state = scaler.state_dict();
  state.erase("_growth_tracker");
  test::expect_mentions(test::error_message([&] { scaler.load_state_dict(state); }),
                        {"loss scaler state: '_growth_tracker' missing or not a number"});
  state = scaler.state_dict();
  state["scale"] = -1.0;
  test::expect_mentions(test::error_message([&] { scaler.load_state_dict(state); }),
                        {"loss scaler state: scale must be finite and > 0, got -1"});
  test::expect_mentions(test::error_message([&] { scaler.update(); }), {"update() called with no unscale()"});
  Tensor p = zeros({1}).set_requires_grad(true);
  p.set_grad(ones({1}));
  scaler.unscale({p});
  test::expect_mentions(test::error_message([&] { scaler.unscale({p}); }), {"unscale called twice in one step"});
}

TEST(LossScaler, DisabledIsANoOp) {
  train::LossScaler scaler({.init_scale = 65536, .growth_factor = 2, .backoff_factor = 0.5, .growth_interval = 2000,
                            .enabled = false});
  EXPECT_EQ(scaler.scale(), 1.0);
  Tensor p = zeros({1}).set_requires_grad(true);
  p.set_grad(from_vector(std::vector<float>{std::numeric_limits<float>::infinity()}, {1}));
  EXPECT_TRUE(scaler.unscale({p}));
  EXPECT_FALSE(scaler.update());
  EXPECT_EQ(scaler.state_dict(), nlohmann::json::object());
}
