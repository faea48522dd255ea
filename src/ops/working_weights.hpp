#pragma once
// Master weights in f32, working weights in bf16. Under bf16 autocast a product rounds its f32 weight
// to bf16 on every call (a linear's forward and its dX product, each step). A WorkingWeights keeps
// the bf16 copy of each parameter it was given, made the first time a bf16 product reads that
// parameter; after that the optimizer's fused AdamW rewrites the copy in the same pass that updates
// the f32 master (AdamWArgs::param_bf16), and bf16 products read it (GemmArgs::b_half) instead of
// rounding again. The f32 masters stay what is trained, clipped and saved.
//
// Rounded to nearest even, a copy holds the very bits the product's own rounding would make, so
// results are unchanged. Rounded stochastically, the bf16 weights the products read are unbiased
// (E[copy] = master): element i of a parameter at step s draws from Philox at (key(seed, s),
// counter + i/4), which depends on nothing else, so refresh(s) after a resume remakes the copies an
// uninterrupted run had.
//
// A copy is current as long as only the optimizer writes its parameter: whatever else writes one
// (loading weights, ZeRO's gather of updated segments) must call refresh(step) after. Parameters
// are found by their data pointer and size, so one moved to another device or replaced is not found,
// and its products round again.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.hpp"
#include "core/tensor.hpp"

namespace ld::ops {

class WorkingWeights {
 public:
  // params: f32, contiguous (others are skipped). The copies start as step `step` would round them.
  WorkingWeights(const std::vector<Tensor>& params, bool stochastic, uint64_t seed, int64_t step = 0);
  ~WorkingWeights();
  WorkingWeights(const WorkingWeights&) = delete;
  WorkingWeights& operator=(const WorkingWeights&) = delete;

  bool stochastic() const { return stochastic_; }
  int64_t step() const;
  // Every copy made so far, rounded again from its master as step's update would round it.
  void refresh(int64_t step);

  // Where step's update of param writes its copy (AdamWArgs::param_bf16, rounding_key,
  // rounding_counter); copy is null when param has none (not listed, or no product read it yet).
  struct Target {
    uint16_t* copy = nullptr;
    uint64_t key = 0, counter = 0;
  };
  Target target(const Tensor& param, int64_t step) const;
  // The optimizer has written every copy for step (the rounding the next copies made will use).
  void updated(int64_t step);

  // The bf16 copy a product reads for param: made now if there is none yet; undefined when param is
  // not listed.
  Tensor copy_of(const Tensor& param);
  // The bytes the copies made so far hold.
  int64_t copy_bytes() const;

 private:
  struct Entry {
    Tensor master, copy;
    uint64_t counter = 0;  // Philox counter of element 0
  };
  Entry* find(const Tensor& param);
  const Entry* find(const Tensor& param) const;
  uint64_t key(int64_t step) const;  // 0 (round to nearest) unless stochastic
  void round_into(const Entry& e, int64_t step) const;

  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  bool stochastic_;
  uint64_t seed_;
  int64_t step_;
};

namespace detail {
// The bf16 copy a bf16 product (precision bf16) reads for weight when a live WorkingWeights lists it,
// else null.
const uint16_t* working_weight(const Tensor& weight, ComputePrecision precision);
}  // namespace detail

}  // namespace ld::ops
