#include "tune/task_mixer.hpp"

#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace ld::tune {

namespace {

constexpr uint64_t kMixerStream = 0x6d69786572;  // "mixer": keeps these draws apart from other streams

std::vector<double> normalised(std::vector<double> values, const char* what) {
  double sum = 0;
  for (const double v : values) {
    LD_CHECK(std::isfinite(v) && v >= 0, what, ": values must be finite and non-negative, got ", v);
    sum += v;
  }
  LD_CHECK(sum > 0, what, ": at least one value must be positive");
  for (double& v : values) v /= sum;
  return values;
}

}  // namespace

std::vector<double> weight_probabilities(std::span<const double> weights) {
  LD_CHECK(!weights.empty(), "task mixing weights: no datasets");
  return normalised({weights.begin(), weights.end()}, "task mixing weights");
}

std::vector<double> temperature_probabilities(std::span<const int64_t> sizes, double temperature) {
  LD_CHECK(!sizes.empty(), "temperature sampling: no datasets");
  LD_CHECK(std::isfinite(temperature) && temperature > 0, "temperature sampling: T must be positive, got ", temperature);
  std::vector<double> p;
  for (const int64_t n : sizes) {
    LD_CHECK(n >= 0, "temperature sampling: dataset sizes must be non-negative, got ", n);
    p.push_back(std::pow(double(n), 1.0 / temperature));
  }
  return normalised(std::move(p), "temperature sampling");
}

std::vector<double> replay_probabilities(double fraction, std::span<const int64_t> earlier_sizes) {
  LD_CHECK(fraction >= 0 && fraction < 1, "replay fraction must be in [0, 1), got ", fraction);
  std::vector<double> p{1.0 - fraction};
  if (fraction == 0) {
    p.resize(earlier_sizes.size() + 1, 0.0);
    return p;
  }
  LD_CHECK(!earlier_sizes.empty(), "replay: a replay fraction needs at least one earlier dataset");
  for (const double q : temperature_probabilities(earlier_sizes, 1.0)) p.push_back(fraction * q);
  return p;
}

TaskMixer::TaskMixer(std::vector<double> probabilities, uint64_t seed, int64_t draws)
    : probabilities_(std::move(probabilities)), seed_(seed), draws_(draws) {
  LD_CHECK(!probabilities_.empty(), "task mixer: no datasets");
  LD_CHECK(draws_ >= 0, "task mixer: the saved draw count must be non-negative, got ", draws_);
  double sum = 0;
  for (const double p : probabilities_) {
    LD_CHECK(std::isfinite(p) && p >= 0, "task mixer: probabilities must be non-negative, got ", p);
    sum += p;
    cumulative_.push_back(sum);
  }
  LD_CHECK(std::abs(sum - 1.0) < 1e-9, "task mixer: probabilities must sum to 1, got ", sum);
}

size_t TaskMixer::next() {
  const auto r = philox4x32(seed_, kMixerStream, uint64_t(draws_++));
  // 53 random bits: a uniform double in [0, 1).
  const double u = double(((uint64_t(r[0]) << 32) | r[1]) >> 11) * 0x1.0p-53;
  for (size_t i = 0; i < cumulative_.size(); ++i)
    if (u < cumulative_[i] && probabilities_[i] > 0) return i;
  // u above the last cumulative sum (rounding): the last dataset that can be drawn.
  for (size_t i = cumulative_.size(); i-- > 0;)
    if (probabilities_[i] > 0) return i;
  LD_ASSERT(false, "task mixer: no dataset has a positive probability");
  return 0;
}

}  // namespace ld::tune
