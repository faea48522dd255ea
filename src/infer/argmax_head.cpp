// The bound. With u = 2^-24 and g(n) = n u / (1 - n u), for row j (cpu::quantize_rows_int8: maxw_j =
// max |w_j|, s_j = maxw_j / 127, q_j = round(w_j / s_j), e_j >= max |w_j - s_j q_j|) and x with
// |x|_1 = nx:
// - the real sums differ by |x . (w_j - s_j q_j)| <= e_j nx;
// - the f32 approximation s_j * (x . q_j), summed in any order with fused multiply-adds and a lane
//   tree of depth 4, is within g(k + 6) s_j 127 nx of its real value;
// - the f32 logit small_m_gemm computes is within g(k + 4) maxw_j nx of its real value.
// A bf16 head is quantised from its weights widened to f32 (exactly), and small_m_gemm widens them
// the same way, so the same bound holds.
// So r_j = e_j + 2 g(k + 6) maxw_j (1 + u) bounds |approx_j - logit_j| / nx, and the decision runs in
// double with a relative margin of 2^-20 on the bound, far above double's own rounding.
#include "infer/argmax_head.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/int8_rows.hpp"
#include "backend/cpu/small_m_gemm.hpp"
#include "core/error.hpp"

namespace ld::infer {

namespace {

constexpr double kUnit = 1.0 / 16777216.0;  // 2^-24, f32's unit roundoff
constexpr double kMargin = 1.0 + 1.0 / 1048576.0;

double gamma(int64_t n) { return double(n) * kUnit / (1.0 - double(n) * kUnit); }

// Above this share of the vocabulary as candidates, the whole f32 product costs less than
// computing the candidates one by one.
constexpr int64_t kFullProductShare = 8;

}  // namespace

ArgmaxHead::ArgmaxHead(const float* w, int64_t vocab, int64_t dim) : ArgmaxHead(w, nullptr, vocab, dim) {}

ArgmaxHead::ArgmaxHead(const uint16_t* w, int64_t vocab, int64_t dim) : ArgmaxHead(nullptr, w, vocab, dim) {}

ArgmaxHead::ArgmaxHead(const float* w_f32, const uint16_t* w_bf16, int64_t vocab, int64_t dim)
    : w_f32_(w_f32), w_bf16_(w_bf16), vocab_(vocab), dim_(dim), q_(size_t(vocab * dim)), scale_(size_t(vocab)),
      radius_(size_t(vocab)), approx_(size_t(kMaxRows * vocab)) {
  LD_CHECK(vocab > 0 && dim > 0, "ArgmaxHead: empty head [", vocab, ", ", dim, "]");
  std::vector<float> max_abs(static_cast<size_t>(vocab)), err(static_cast<size_t>(vocab));
  if (w_f32 != nullptr)
    cpu::quantize_rows_int8(vocab, dim, w_f32, dim, q_.data(), dim, scale_.data(), max_abs.data(), err.data());
  else
    cpu::quantize_rows_int8(vocab, dim, w_bf16, dim, q_.data(), dim, scale_.data(), max_abs.data(), err.data());
  const double rounding = 2.0 * gamma(dim + 6) * (1.0 + kUnit);
  for (int64_t j = 0; j < vocab; ++j)  // a row with NaN or inf weights: +inf, always a candidate
    radius_[size_t(j)] = double(err[size_t(j)]) + rounding * double(max_abs[size_t(j)]);
}

float ArgmaxHead::exact_logit(const float* x, int64_t j) const {
  float y = 0.0f;
  if (w_f32_ != nullptr)
    cpu::small_m_gemm(1, 1, dim_, x, dim_, w_f32_ + j * dim_, dim_, /*w_kn=*/false, &y, 1, /*accumulate=*/false);
  else
    cpu::small_m_gemm(1, 1, dim_, x, dim_, w_bf16_ + j * dim_, dim_, /*w_kn=*/false, &y, 1, /*accumulate=*/false);
  return y;
}

// The product DecodeStep::run makes for this row: per row, the same logits.
void ArgmaxHead::full_product(const float* x, float* logits) const {
  if (w_f32_ != nullptr)
    cpu::small_m_gemm(1, vocab_, dim_, x, dim_, w_f32_, dim_, /*w_kn=*/false, logits, vocab_, false);
  else
    cpu::small_m_gemm(1, vocab_, dim_, x, dim_, w_bf16_, dim_, /*w_kn=*/false, logits, vocab_, false);
}

bool ArgmaxHead::argmax_row(const float* x, const float* approx, int64_t* out) {
  double nx = 0.0;
  for (int64_t i = 0; i < dim_; ++i) nx += std::fabs(double(x[i]));
  // Zero x would meet an infinite radius as 0 * inf: the full product decides (and reports NaN).
  if (!std::isfinite(nx) || nx == 0.0) return false;
  nx *= kMargin;
  double best_lower = -std::numeric_limits<double>::infinity();
  int not_finite = 0;
  const double* radius = radius_.data();
  // The reductions may be reordered (max and | are exact): lets the compiler vectorise the loop.
#pragma omp simd reduction(max : best_lower) reduction(| : not_finite)
  for (int64_t j = 0; j < vocab_; ++j) {
    not_finite |= !(std::fabs(approx[j]) <= std::numeric_limits<float>::max());
    best_lower = std::max(best_lower, double(approx[j]) - nx * radius[j]);
  }
  if (not_finite) return false;
  candidates_.clear();
  for (int64_t j = 0; j < vocab_; ++j)
    if (double(approx[j]) + nx * radius_[size_t(j)] >= best_lower) candidates_.push_back(int32_t(j));
  last_candidates_ += int64_t(candidates_.size());
  if (int64_t(candidates_.size()) * kFullProductShare > vocab_) {
    std::vector<float> logits(static_cast<size_t>(vocab_));
    full_product(x, logits.data());
    if (std::any_of(logits.begin(), logits.end(), [](float v) { return std::isnan(v); })) return false;
    *out = std::max_element(logits.begin(), logits.end()) - logits.begin();
    return true;
  }
  float best = -std::numeric_limits<float>::infinity();
  *out = candidates_.front();
  for (int32_t j : candidates_) {  // ascending: the first maximum is the lowest id
    const float v = exact_logit(x, j);
    if (std::isnan(v)) return false;
    if (v > best) best = v, *out = j;
  }
  return true;
}

bool ArgmaxHead::argmax(int64_t m, const float* x, int64_t* out) {
  LD_CHECK(m >= 1 && m <= kMaxRows, "ArgmaxHead: ", m, " rows, expected 1..", kMaxRows);
  cpu::int8_rows_gemm(m, vocab_, dim_, x, dim_, q_.data(), dim_, scale_.data(), approx_.data(), vocab_);
  last_candidates_ = 0;
  for (int64_t b = 0; b < m; ++b)
    if (!argmax_row(x + b * dim_, approx_.data() + b * vocab_, out + b)) return false;
  return true;
}

}  // namespace ld::infer
