#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). Element i of a random tensor
// depends only on (seed, offset, i), never on how many threads produced it or in which order.
#include <array>
#include <cstdint>

namespace ld {

std::array<uint32_t, 4> philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo);

// uniform in [0, 1): 24 random bits, so that 1.0 is never produced
inline float uint_to_unit_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

// A seed plus a running offset: each draw of n values consumes ceil(n/4) counters.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserve counters for n values; returns the first counter.
  uint64_t advance(uint64_t n) {
    uint64_t start = offset_;
    offset_ += (n + 3) / 4;
    return start;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace ld
