// Task mixing: probabilities from weights, temperature and replay by their formulas, draw frequencies
// within statistical bounds, and exact resume.
#include "tune/task_mixer.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "index " << i;
}

TEST(TaskMixer, ProbabilitiesFollowTheFormulas) {
  expect_near_all(weight_probabilities(std::vector<double>{1, 3}), {0.25, 0.75});
  const std::vector<int64_t> sizes{100, 900};
  expect_near_all(temperature_probabilities(sizes, 1.0), {0.1, 0.9});
  expect_near_all(temperature_probabilities(sizes, 2.0), {10.0 / 40, 30.0 / 40});  // sqrt(n)
  const std::vector<double> flat = temperature_probabilities(sizes, 1e6);
  EXPECT_NEAR(flat[0], 0.5, 1e-5);
  expect_near_all(replay_probabilities(0.2, std::vector<int64_t>{100, 300}), {0.8, 0.05, 0.15});
  expect_near_all(replay_probabilities(0.0, std::vector<int64_t>{100}), {1.0, 0.0});
}

// Frequencies of n draws within 5 standard deviations of p (binomial), for every dataset.
void expect_frequencies(const std::vector<double>& p, uint64_t seed) {
  const int n = 40000;
  TaskMixer mixer(p, seed);
  std::vector<int> counts(p.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[mixer.next()];
  for (size_t i = 0; i < p.size(); ++i) {
    const double sd = std::sqrt(p[i] * (1 - p[i]) / n);
    EXPECT_NEAR(double(counts[i]) / n, p[i], 5 * sd + 1e-12) << "dataset " << i;
  }
}

TEST(TaskMixer, DrawFrequenciesMatchProbabilities) {
  expect_frequencies(weight_probabilities(std::vector<double>{1, 2, 7, 0}), 11);
  expect_frequencies(temperature_probabilities(std::vector<int64_t>{50, 500, 5000}, 3.0), 12);
  expect_frequencies(replay_probabilities(0.1, std::vector<int64_t>{10, 30}), 13);
}

TEST(TaskMixer, ResumeContinuesIdentically) {
  const std::vector<double> p = weight_probabilities(std::vector<double>{1, 1, 1});
  TaskMixer a(p, 7);
  for (int i = 0; i < 100; ++i) a.next();
  TaskMixer b(p, 7, a.draws());
  std::vector<size_t> from_a, from_b;
  for (int i = 0; i < 200; ++i) {
    from_a.push_back(a.next());
    from_b.push_back(b.next());
  }
  EXPECT_EQ(from_a, from_b);
  TaskMixer other_seed(p, 8, 100);
  std::vector<size_t> from_c;
  for (int i = 0; i < 200; ++i) from_c.push_back(other_seed.next());
  EXPECT_NE(from_c, from_a);
}

TEST(TaskMixer, BadInputIsAnError) {
  expect_mentions(error_message([] { weight_probabilities(std::vector<double>{1, -1}); }), {"non-negative", "-1"});
  expect_mentions(error_message([] { weight_probabilities(std::vector<double>{0, 0}); }), {"positive"});
  expect_mentions(error_message([] { temperature_probabilities(std::vector<int64_t>{1}, 0); }), {"T must be positive"});
  expect_mentions(error_message([] { replay_probabilities(1.0, std::vector<int64_t>{1}); }), {"[0, 1)"});
  expect_mentions(error_message([] { replay_probabilities(0.5, {}); }), {"earlier dataset"});
  expect_mentions(error_message([] { TaskMixer({0.5, 0.6}, 1); }), {"sum to 1"});
}

}  // namespace
}  // namespace ld::tune
