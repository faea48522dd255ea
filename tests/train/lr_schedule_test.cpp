#include "train/lr_schedule.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "optim_ref.hpp"
#include "test_util.hpp"

using namespace ld;
using train::LrDecay;
using train::LrSchedule;
using train::lr_at;

namespace {

LrSchedule schedule(LrDecay decay) {
  // lr 1, 10 warmup steps, decay over steps 10..110 down to 0.1.
  return {.lr = 1.0, .warmup_steps = 10, .max_steps = 110, .min_lr_ratio = 0.1, .decay = decay};
}

}  // namespace

// Values worked out by hand from the documented formulas.
TEST(LrSchedule, WarmupStartsAtLrOverWarmupAndReachesLrOnItsLastStep) {
  for (LrDecay decay : {LrDecay::cosine, LrDecay::linear, LrDecay::constant}) {
    LrSchedule s = schedule(decay);
    EXPECT_DOUBLE_EQ(lr_at(s, 0), 0.1);
    EXPECT_DOUBLE_EQ(lr_at(s, 4), 0.5);
    EXPECT_DOUBLE_EQ(lr_at(s, 9), 1.0);
    EXPECT_DOUBLE_EQ(lr_at(s, 10), 1.0);  // first decay step: ratio 0
  }
}

TEST(LrSchedule, CosineDecayHandValues) {
  LrSchedule s = schedule(LrDecay::cosine);
  EXPECT_DOUBLE_EQ(lr_at(s, 35), 0.1 + 0.9 * 0.8535533905932737);  // ratio 1/4: (1 + cos(pi/4)) / 2
  EXPECT_DOUBLE_EQ(lr_at(s, 60), 0.55);                             // ratio 1/2: halfway to the floor
  EXPECT_DOUBLE_EQ(lr_at(s, 85), 0.1 + 0.9 * 0.14644660940672627);  // ratio 3/4
  EXPECT_DOUBLE_EQ(lr_at(s, 110), 0.1);                             // max_steps: the floor
  EXPECT_DOUBLE_EQ(lr_at(s, 111), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(s, 1000000), 0.1);
}

TEST(LrSchedule, LinearDecayHandValues) {
  LrSchedule s = schedule(LrDecay::linear);
  EXPECT_DOUBLE_EQ(lr_at(s, 35), 0.775);
  EXPECT_DOUBLE_EQ(lr_at(s, 60), 0.55);
  EXPECT_DOUBLE_EQ(lr_at(s, 109), 0.109);
  EXPECT_DOUBLE_EQ(lr_at(s, 110), 0.1);
  EXPECT_DOUBLE_EQ(lr_at(s, 500), 0.1);
}

TEST(LrSchedule, ConstantHoldsThePeakAfterWarmup) {
  LrSchedule s = schedule(LrDecay::constant);
  EXPECT_DOUBLE_EQ(lr_at(s, 60), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(s, 5000), 1.0);
  s.max_steps = 0;  // not needed without decay
  EXPECT_DOUBLE_EQ(lr_at(s, 5000), 1.0);
}

TEST(LrSchedule, NoWarmupStartsAtThePeakAndZeroRatioDecaysToZero) {
  LrSchedule s{.lr = 3e-4, .warmup_steps = 0, .max_steps = 4, .min_lr_ratio = 0.0, .decay = LrDecay::linear};
  EXPECT_DOUBLE_EQ(lr_at(s, 0), 3e-4);
  EXPECT_DOUBLE_EQ(lr_at(s, 1), 3e-4 * 0.75);
  EXPECT_DOUBLE_EQ(lr_at(s, 4), 0.0);
}

TEST(LrSchedule, RejectsSchedulesAUserCouldNotHaveMeant) {
  LrSchedule s = schedule(LrDecay::cosine);
  s.max_steps = 10;
  test::expect_mentions(test::error_message([&] { lr_at(s, 0); }),
                        {"max_steps (10) must be greater than warmup_steps (10)", "cosine"});
  s = schedule(LrDecay::linear);
  s.min_lr_ratio = 1.5;
  test::expect_mentions(test::error_message([&] { lr_at(s, 0); }), {"min_lr_ratio must be in [0, 1], got 1.5"});
  s = schedule(LrDecay::linear);
  test::expect_mentions(test::error_message([&] { lr_at(s, -1); }), {"step must be >= 0", "got -1"});
  s.warmup_steps = -2;
  test::expect_mentions(test::error_message([&] { lr_at(s, 0); }), {"warmup_steps must be >= 0, got -2"});
}

TEST(LrSchedule, ParsesDecayNames) {
  EXPECT_EQ(train::parse_lr_decay("cosine"), LrDecay::cosine);
  EXPECT_EQ(train::parse_lr_decay("linear"), LrDecay::linear);
  EXPECT_EQ(train::parse_lr_decay("constant"), LrDecay::constant);
  EXPECT_EQ(train::lr_decay_name(LrDecay::linear), "linear");
  test::expect_mentions(test::error_message([] { train::parse_lr_decay("cosin"); }),
                        {"unknown decay 'cosin'", "cosine, linear or constant"});
}

// torch's LambdaLR driving an optimizer gives, before update s, the rate our lr_at(s) gives: checks the
// step convention (LambdaLR applies lambda(0) at construction and advances after each update) at the
// warmup/decay and decay/floor boundaries.
TEST(LrSchedule, MatchesTorchLambdaLrAcrossTheBoundaries) {
  SKIP_WITHOUT_TORCH();
  for (LrDecay decay : {LrDecay::cosine, LrDecay::linear, LrDecay::constant}) {
    LrSchedule s{.lr = 6e-4, .warmup_steps = 5, .max_steps = 20, .min_lr_ratio = 0.1, .decay = decay};
    const int steps = 26;
    auto ref = test::torch_optim_ref("lr", {{"lr", s.lr},
                                            {"warmup_steps", s.warmup_steps},
                                            {"max_steps", s.max_steps},
                                            {"min_lr_ratio", s.min_lr_ratio},
                                            {"decay", train::lr_decay_name(decay)},
                                            {"steps", steps}});
    ASSERT_TRUE(ref);
    std::vector<double> lrs = (*ref)["lrs"].get<std::vector<double>>();
    ASSERT_EQ(lrs.size(), size_t(steps));
    for (int step = 0; step < steps; ++step)
      EXPECT_NEAR(lr_at(s, step), lrs[step], 1e-15) << train::lr_decay_name(decay) << " step " << step;
  }
}
