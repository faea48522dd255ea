#pragma once
// Greedy decoding's argmax over the vocabulary, exact, without streaming the whole lm_head (f32 or
// bf16) every token. On the CPU a decode step is bound by the bytes of weights it reads, and the lm_head
// is a large share of them (small: 12.6 of 55 MB; GPT-2 124M: 154 of 498 MB).
//
// An int8 copy of the head (one scale per row, a quarter of the bytes) gives every logit to within a
// bound that is proven per row: |approx_j - logit_j| <= |x|_1 * r_j, where r_j covers the
// quantisation error of row j and the rounding of both f32 products. Only the rows whose interval
// can reach the largest lower bound are candidates; their logits are then computed from the row
// (f32, or bf16 widened exactly) by the same kernel and blocking the full product uses (cpu::small_m_gemm), so the token is the
// argmax of exactly the logits DecodeStep::run returns, lowest id on ties as torch.argmax.
#include <cstdint>
#include <vector>

namespace ld::infer {

class ArgmaxHead {
 public:
  // w: the head's weight [vocab, dim] (nn::Linear's layout), f32 or bf16 (raw 16-bit patterns, as
  // infer::to_bf16_weights leaves them), owned by the caller and unchanged while this object lives.
  ArgmaxHead(const float* w, int64_t vocab, int64_t dim);
  ArgmaxHead(const uint16_t* w, int64_t vocab, int64_t dim);

  // out[b] = argmax over j of (x[b] . w[j]) for the m rows of x [m, dim], m in 1..kMaxRows.
  // Returns false, with out unspecified, when x or an approximate logit is not finite: the bound
  // does not hold, and the caller computes the logits in full.
  bool argmax(int64_t m, const float* x, int64_t* out);

  static constexpr int64_t kMaxRows = 8;
  // The rows whose f32 logits the last call computed, over all rows of x (tests, statistics).
  int64_t last_candidates() const { return last_candidates_; }

 private:
  bool argmax_row(const float* x, const float* approx, int64_t* out);
  ArgmaxHead(const float* w_f32, const uint16_t* w_bf16, int64_t vocab, int64_t dim);
  float exact_logit(const float* x, int64_t j) const;
  void full_product(const float* x, float* logits) const;

  const float* w_f32_;
  const uint16_t* w_bf16_;
  int64_t vocab_, dim_;
  std::vector<int8_t> q_;       // [vocab, dim]
  std::vector<float> scale_;    // row j of w ~ scale_[j] * q_[j]
  std::vector<double> radius_;  // r_j above
  std::vector<float> approx_;   // [kMaxRows, vocab] scratch
  std::vector<int32_t> candidates_;
  int64_t last_candidates_ = 0;
};

}  // namespace ld::infer
