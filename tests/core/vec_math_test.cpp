#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backend/cpu/vec_math.hpp"

// The vectorisable exp used by the CPU kernels against double-precision exp over the float range.
TEST(VecMath, ExpApproxIsWithinAFewUlp) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.00731f) {
    double want = std::exp(double(x));
    double rel = std::fabs(double(ld::cpu::exp_approx(x)) - want) / want;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 3e-7);  // 2.5 ulp of float
}

TEST(VecMath, ExpApproxEdgeValues) {
  EXPECT_EQ(ld::cpu::exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(ld::cpu::exp_approx(-1000.0f), 0.0f);
  EXPECT_EQ(ld::cpu::exp_approx(0.0f), 1.0f);
  EXPECT_TRUE(std::isfinite(ld::cpu::exp_approx(88.0f)));
  EXPECT_NEAR(ld::cpu::sigmoid_approx(0.0f), 0.5f, 1e-7);
  EXPECT_NEAR(ld::cpu::tanh_via_exp(0.3f), std::tanh(0.3), 2e-7);
}
