#pragma once
// Multi-task and continual fine-tuning: which dataset each training example comes from.
//
// Probabilities: explicit weights (normalised), or temperature sampling p_i ∝ n_i^(1/T) over the
// dataset sizes n_i (T = 1: proportional to size; larger T flattens towards uniform, as in
// multilingual and multi-task training). Replay (continual learning): the new dataset gets
// 1 - fraction and the earlier datasets share `fraction` in proportion to their sizes.
//
// Draw k is Philox-4x32 (seed, kMixerStream, k) mapped to a uniform in [0, 1) and looked up in the
// cumulative probabilities, so the choices depend only on the seed and k: the state to save for an
// exact resume is the number of draws made.
#include <cstdint>
#include <span>
#include <vector>

namespace ld::tune {

std::vector<double> weight_probabilities(std::span<const double> weights);
std::vector<double> temperature_probabilities(std::span<const int64_t> sizes, double temperature);
// Index 0: the new dataset; 1..: the earlier datasets, whose sizes are given. fraction in [0, 1).
std::vector<double> replay_probabilities(double fraction, std::span<const int64_t> earlier_sizes);

class TaskMixer {
 public:
  // probabilities: non-negative, summing to 1 (within 1e-9); draws: where a saved run continues.
  TaskMixer(std::vector<double> probabilities, uint64_t seed, int64_t draws = 0);
  size_t next();  // the dataset the next example comes from
  int64_t draws() const { return draws_; }  // the state to save
  const std::vector<double>& probabilities() const { return probabilities_; }

 private:
  std::vector<double> probabilities_;
  std::vector<double> cumulative_;
  uint64_t seed_;
  int64_t draws_;
};

}  // namespace ld::tune
