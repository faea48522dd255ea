// Tick generation: 1-2-5 steps on hand examples, ranges that cover the data, labels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "plot/ticks.hpp"

namespace ld::plot {
namespace {

void expect_values(const Ticks& t, const std::vector<double>& want) {
  ASSERT_EQ(t.values.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.values[i], want[i], 1e-12 + 1e-9 * std::fabs(want[i])) << i;
}

TEST(PlotTicks, HandExamples) {
  Ticks t = nice_ticks(0, 10, 5);  // 10/5 = 2: a 2 step
  EXPECT_DOUBLE_EQ(t.step, 2);
  expect_values(t, {0, 2, 4, 6, 8, 10});

  t = nice_ticks(2.7, 10.9, 6);  // 8.2/6 = 1.37 -> 2; the range widens to whole steps
  EXPECT_DOUBLE_EQ(t.step, 2);
  expect_values(t, {2, 4, 6, 8, 10, 12});
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"2", "4", "6", "8", "10", "12"}));

  t = nice_ticks(0, 2000, 8);  // 250 -> 500
  EXPECT_DOUBLE_EQ(t.step, 500);
  expect_values(t, {0, 500, 1000, 1500, 2000});

  t = nice_ticks(0.13, 0.87, 5);  // 0.148 -> 0.2
  EXPECT_NEAR(t.step, 0.2, 1e-15);
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1.0"}));

  t = nice_ticks(-1, 1, 4);  // 0.5 step, zero exactly zero
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"-1.0", "-0.5", "0", "0.5", "1.0"}));
  EXPECT_EQ(t.values[2], 0.0);
}

TEST(PlotTicks, SmallAndLargeValuesUseScientificLabels) {
  Ticks t = nice_ticks(0, 6e-4, 6);  // a learning rate axis
  EXPECT_NEAR(t.step, 1e-4, 1e-18);
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"0", "1e-4", "2e-4", "3e-4", "4e-4", "5e-4", "6e-4"}));

  t = nice_ticks(0, 3e-4, 6);  // 5e-5 steps: one mantissa decimal on every label
  EXPECT_EQ(tick_labels(t),
            (std::vector<std::string>{"0", "5.0e-5", "1.0e-4", "1.5e-4", "2.0e-4", "2.5e-4", "3.0e-4"}));

  t = nice_ticks(0, 1e-3, 4);  // 2.5e-4 is not a 1-2-5 step: 5e-4
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"0", "5.0e-4", "1.0e-3"}));
}

TEST(PlotTicks, LargeStepCountsUseThousandsAndMillions) {
  EXPECT_EQ(tick_labels(nice_ticks(0, 200000, 4)), (std::vector<std::string>{"0", "50k", "100k", "150k", "200k"}));
  EXPECT_EQ(tick_labels(nice_ticks(0, 2e6, 4)), (std::vector<std::string>{"0", "0.5M", "1.0M", "1.5M", "2.0M"}));
  EXPECT_EQ(tick_labels(nice_ticks(9000, 12000, 6)), (std::vector<std::string>{"9.0k", "9.5k", "10.0k", "10.5k", "11.0k", "11.5k", "12.0k"}));
  // Below ten thousand, plain numbers.
  EXPECT_EQ(tick_labels(nice_ticks(0, 2000, 4)), (std::vector<std::string>{"0", "500", "1000", "1500", "2000"}));
}

TEST(PlotTicks, FlatSeriesGetsAnAxis) {
  Ticks t = nice_ticks(3, 3, 5);  // widened to 2.7..3.3, step 0.2
  EXPECT_LT(t.lo, 3);
  EXPECT_GT(t.hi, 3);
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"2.6", "2.8", "3.0", "3.2", "3.4"}));
  t = nice_ticks(0, 0, 5);
  EXPECT_LT(t.lo, 0);
  EXPECT_GT(t.hi, 0);
}

TEST(PlotTicks, StepsAreOneTwoFiveAndCoverTheData) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> exponent(-8, 8), unit(0, 1);
  for (int i = 0; i < 2000; ++i) {
    const double scale = std::pow(10.0, exponent(rng));
    double a = (unit(rng) - 0.3) * scale, b = (unit(rng) - 0.3) * scale;
    if (a > b) std::swap(a, b);
    const int target = 3 + i % 6;
    const Ticks t = nice_ticks(a, b, target);
    const double mantissa = t.step / std::pow(10.0, std::floor(std::log10(t.step) + 1e-9));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-9 || std::fabs(mantissa - 2) < 1e-9 || std::fabs(mantissa - 5) < 1e-9)
        << t.step;
    EXPECT_LE(t.lo, a);
    EXPECT_GE(t.hi, b);
    EXPECT_GE(static_cast<int>(t.values.size()) - 1, target / 3) << a << " " << b;
    EXPECT_LE(static_cast<int>(t.values.size()) - 1, target + 2) << a << " " << b;
    const auto labels = tick_labels(t);
    for (size_t k = 1; k < labels.size(); ++k) EXPECT_NE(labels[k], labels[k - 1]) << a << " " << b;
  }
}

TEST(PlotTicks, LogTicksAreDecadesWithTwoAndFive) {
  Ticks t = log_ticks(0.3, 50);
  expect_values(t, {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100});
  EXPECT_EQ(tick_labels(t), (std::vector<std::string>{"0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50", "100"}));
  t = log_ticks(1e-6, 1e2);  // many decades: decades only
  EXPECT_EQ(t.values.size(), 9u);
  EXPECT_EQ(tick_labels(t).front(), "1e-6");
}

}  // namespace
}  // namespace ld::plot
