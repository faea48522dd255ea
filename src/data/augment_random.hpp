#pragma once
// The random draws of augmentation: one Philox stream per (seed, document, stream), so what a
// document gets depends only on the seed and its index, never on the thread that handles it or on
// the documents around it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/rng.hpp"

namespace ld::data {

class AugmentRandom {
 public:
  // stream separates independent uses for one document (e.g. the n-th back-translation sample).
  AugmentRandom(uint64_t seed, uint64_t document, uint64_t stream = 0)
      : seed_(seed), hi_(document), counter_(stream << 40) {}

  uint32_t next_u32() {
    if (used_ == 4) {
      block_ = philox4x32(seed_, hi_, counter_++);
      used_ = 0;
    }
    return block_[used_++];
  }
  uint64_t next_u64() { return (uint64_t(next_u32()) << 32) | next_u32(); }

  // Uniform in [0, n) for n > 0 (64 random bits modulo n: the bias is below n / 2^64).
  size_t below(size_t n) { return n <= 1 ? 0 : static_cast<size_t>(next_u64() % n); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }

  // Python's random.shuffle (Fisher-Yates from the back), as the EDA code uses it.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  uint64_t seed_, hi_;
  uint64_t counter_;  // streams start 2^40 counters apart
  std::array<uint32_t, 4> block_{};
  int used_ = 4;
};

}  // namespace ld::data
