#pragma once
// Next-token samplers on one row of logits (host side; a batch caller loops over rows).
//
// The chain follows Hugging Face transformers' generate() with do_sample=True, in its order:
// RepetitionPenaltyLogitsProcessor, then the warpers Temperature, TopK, TopP, MinP, then a draw from
// the softmax of what survives. Rules taken from transformers' logits_process.py:
//  - repetition penalty (CTRL): every token present in the context (counted once, however often it
//    occurs) has its logit divided by the penalty if the logit is >= 0, multiplied if it is < 0;
//  - top-k keeps every token whose logit is >= the k-th largest, so ties at the k-th value all stay;
//  - top-p sorts ascending, removes tokens whose ascending cumulative probability is <= 1 - top_p
//    and always keeps the most probable: the smallest top set whose mass reaches top_p;
//  - min-p removes tokens with p < min_p * p_max (p renormalised after the previous filters),
//    always keeping the most probable.
// temperature == 0 means greedy: the argmax of the penalised logits (lowest index on ties); the
// filters never remove the argmax, so they do not change it.
// Probabilities and cumulative sums are computed in double. Only as much of the vocabulary is sorted
// as the filters need (top-p sorts a growing head until it holds the nucleus), so plain sampling
// over a 150k vocabulary costs a few passes, not a sort. Among equal logits the lower token id
// counts as more probable (HF's torch.sort leaves that order unspecified); this only matters when
// top-p's boundary falls inside a run of equal logits.
#include <cstdint>
#include <span>
#include <vector>

namespace ld::infer {

struct SamplingOptions {
  float temperature = 1.0f;         // 0 = greedy
  int top_k = 0;                    // 0 = off
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off: drop tokens with p < min_p * p_max
  float repetition_penalty = 1.0f;  // 1 = off
};

// Throws ld::Error naming the first bad option and its value.
void validate(const SamplingOptions& options);

// The tokens that survive the filters, most probable first, with their renormalised
// probabilities. Views into the Sampler's buffers: valid until its next call.
struct Candidates {
  std::span<const int32_t> tokens;
  std::span<const double> probs;
};

class Sampler {
 public:
  // Seeded Philox-4x32-10: draw number n uses counter n, so a run is reproducible and does not depend
  // on threads or on anything else drawing random numbers.
  explicit Sampler(SamplingOptions options, uint64_t seed);

  // One draw; every call (greedy included) advances the counter by one.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> context);
  // The distribution sample() draws from (for temperature 0: the argmax alone, probability 1);
  // draws nothing.
  Candidates candidates(std::span<const float> logits, std::span<const int32_t> context);

  const SamplingOptions& options() const { return options_; }
  uint64_t draws() const { return counter_; }

 private:
  Candidates filter(std::span<const float> logits, std::span<const int32_t> context, bool sorted);
  void prepare(std::span<const float> logits, std::span<const int32_t> context);
  void sort_first(size_t m, size_t n);
  size_t keep_top_k(size_t n);
  size_t keep_top_p(size_t n);
  size_t keep_min_p(size_t n);
  size_t keep_if(size_t n, double min_weight);
  void normalise(size_t n);
  double next_uniform();

  SamplingOptions options_;
  uint64_t seed_;
  uint64_t counter_ = 0;
  std::vector<float> scores_;    // processed logits, indexed by token
  std::vector<int32_t> order_;   // candidate token ids; the first sorted_ are the best, in order
  size_t sorted_ = 0;
  std::vector<double> probs_;    // renormalised probabilities of order_[0, n)
};

}  // namespace ld::infer
