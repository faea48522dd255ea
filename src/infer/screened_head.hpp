#pragma once
// The lm_head's largest logits, exact, without streaming the whole head (f32 or bf16) every token:
// greedy decoding needs the argmax, top-k sampling the k largest. On the CPU a decode step is bound
// by the bytes of weights it reads, and the lm_head is a large share of them (small: 12.6 of 55 MB;
// GPT-2 124M: 154 of 498 MB).
//
// An int8 copy of the head (one scale per row, a quarter of the bytes) gives every logit to within a
// bound that is proven per row: |approx_j - logit_j| <= |x|_1 * r_j, where r_j covers the
// quantisation error of row j and the rounding of both f32 products. Only the rows whose interval
// reaches the k-th largest lower bound are candidates (every other logit is below k logits); their
// logits are then computed from the row (f32, or bf16 widened exactly) by the same kernel and
// blocking the full product uses (cpu::small_m_gemm). So the argmax is that of exactly the logits
// DecodeStep::run returns, lowest id on ties as torch.argmax, and the k largest are those logits.
#include <cstdint>
#include <vector>

namespace ld::infer {

class ScreenedHead {
 public:
  // w: the head's weight [vocab, dim] (nn::Linear's layout), f32 or bf16 (raw 16-bit patterns, as
  // infer::to_bf16_weights leaves them), owned by the caller and unchanged while this object lives.
  ScreenedHead(const float* w, int64_t vocab, int64_t dim);
  ScreenedHead(const uint16_t* w, int64_t vocab, int64_t dim);

  static constexpr int64_t kMaxRows = 8;
  // Above 1 / kFullProductShare of the vocabulary as candidates, one full product costs less than
  // computing them one by one, and the screen falls back to it.
  static constexpr int64_t kFullProductShare = 8;

  // out[b] = argmax over j of (x[b] . w[j]) for the m rows of x [m, dim], m in 1..kMaxRows.
  // Returns false, with out unspecified, when x or an approximate logit is not finite, or x is 0:
  // the bound does not hold, and the caller computes the logits in full.
  bool argmax(int64_t m, const float* x, int64_t* out);

  // logits [m, vocab]: per row, the full product's logit for every token that is or ties with one
  // of the k largest (and maybe a few more), -inf for the others. So a top-k filter (HF's: every
  // logit >= the k-th largest) keeps the same tokens with the same logits. False as argmax.
  bool top_k(int64_t m, const float* x, int64_t k, float* logits);

  // The rows whose logits the last call computed, over all rows of x (tests, statistics).
  int64_t last_candidates() const { return last_candidates_; }

 private:
  ScreenedHead(const float* w_f32, const uint16_t* w_bf16, int64_t vocab, int64_t dim);
  // candidates_ = the rows whose interval reaches the k-th largest lower bound, ascending; or
  // every row when that is cheaper as one full product. False when the bound does not hold.
  bool screen(const float* x, const float* approx, int64_t k);
  void approximate(int64_t m, const float* x);  // approx_ for the m rows of x
  // After screen(): the full product into full (all_rows_) or the candidates' logits into exact_.
  // False when the screen fails or a logit is NaN.
  bool exact_logits(const float* x, const float* approx, int64_t k, float* full);
  void candidate_logits(const float* x, float* out) const;
  void full_product(const float* x, float* logits) const;

  const float* w_f32_;
  const uint16_t* w_bf16_;
  int64_t vocab_, dim_;
  std::vector<int8_t> q_;       // [vocab, dim]
  std::vector<float> scale_;    // row j of w ~ scale_[j] * q_[j]
  std::vector<double> radius_;  // r_j above
  std::vector<float> approx_;   // [kMaxRows, vocab] scratch
  std::vector<double> lower_;   // [vocab] scratch for k > 1
  std::vector<int32_t> candidates_;
  std::vector<float> exact_;    // the candidates' logits
  std::vector<float> full_;     // [vocab] argmax's full product, when the screen keeps too many
  bool all_rows_ = false;       // screen() chose the full product
  int64_t last_candidates_ = 0;
};

}  // namespace ld::infer
