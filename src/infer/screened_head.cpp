// The bound. With u = 2^-24 and g(n) = n u / (1 - n u), for row j (cpu::quantize_rows_int8: maxw_j =
// max |w_j|, s_j = maxw_j / 127, q_j = round(w_j / s_j), e_j >= max |w_j - s_j q_j|) and x of d
// elements with |x|_1 = nx:
// - the real sums differ by |x . (w_j - s_j q_j)| <= e_j nx;
// - the f32 approximation s_j * (x . q_j), summed in any order with fused multiply-adds and a lane
//   tree of depth 4, is within g(d + 6) s_j 127 nx of its real value;
// - the f32 logit small_m_gemm computes is within g(d + 4) maxw_j nx of its real value.
// A bf16 head is quantised from its weights widened to f32 (exactly), and small_m_gemm widens them
// the same way, so the same bound holds.
// So r_j = e_j + 2 g(d + 6) maxw_j (1 + u) bounds |approx_j - logit_j| / nx, and the decision runs in
// double with a relative margin of 2^-20 on the bound, far above double's own rounding.
//
// The screen: if k rows have lower bounds >= L, k logits are >= L, and a row whose upper bound is
// below L has a logit below all k of them: neither the argmax (k = 1) nor tied with the k-th largest.
#include "infer/screened_head.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "backend/cpu/int8_rows.hpp"
#include "backend/cpu/small_m_gemm.hpp"
#include "core/error.hpp"

namespace ld::infer {

namespace {

constexpr double kUnit = 1.0 / 16777216.0;  // 2^-24, f32's unit roundoff
constexpr double kMargin = 1.0 + 1.0 / 1048576.0;

double gamma(int64_t n) { return double(n) * kUnit / (1.0 - double(n) * kUnit); }

}  // namespace

ScreenedHead::ScreenedHead(const float* w, int64_t vocab, int64_t dim) : ScreenedHead(w, nullptr, vocab, dim) {}

ScreenedHead::ScreenedHead(const uint16_t* w, int64_t vocab, int64_t dim) : ScreenedHead(nullptr, w, vocab, dim) {}

ScreenedHead::ScreenedHead(const float* w_f32, const uint16_t* w_bf16, int64_t vocab, int64_t dim)
    : w_f32_(w_f32), w_bf16_(w_bf16), vocab_(vocab), dim_(dim), q_(size_t(vocab * dim)), scale_(size_t(vocab)),
      radius_(size_t(vocab)), approx_(size_t(kMaxRows * vocab)) {
  LD_CHECK(vocab > 0 && dim > 0, "ScreenedHead: empty head [", vocab, ", ", dim, "]");
  std::vector<float> max_abs(static_cast<size_t>(vocab)), err(static_cast<size_t>(vocab));
  if (w_f32 != nullptr)
    cpu::quantize_rows_int8(vocab, dim, w_f32, dim, q_.data(), dim, scale_.data(), max_abs.data(), err.data());
  else
    cpu::quantize_rows_int8(vocab, dim, w_bf16, dim, q_.data(), dim, scale_.data(), max_abs.data(), err.data());
  const double rounding = 2.0 * gamma(dim + 6) * (1.0 + kUnit);
  for (int64_t j = 0; j < vocab; ++j)  // a row with NaN or inf weights: +inf, always a candidate
    radius_[size_t(j)] = double(err[size_t(j)]) + rounding * double(max_abs[size_t(j)]);
}

// Each candidate's logit as the full product computes it (cpu::small_m_gemm_rows).
void ScreenedHead::candidate_logits(const float* x, float* out) const {
  const int64_t n = int64_t(candidates_.size());
  if (w_f32_ != nullptr)
    cpu::small_m_gemm_rows(dim_, x, w_f32_, dim_, candidates_.data(), n, out);
  else
    cpu::small_m_gemm_rows(dim_, x, w_bf16_, dim_, candidates_.data(), n, out);
}

// The product DecodeStep::run makes for this row: per row, the same logits.
void ScreenedHead::full_product(const float* x, float* logits) const {
  if (w_f32_ != nullptr)
    cpu::small_m_gemm(1, vocab_, dim_, x, dim_, w_f32_, dim_, /*w_kn=*/false, logits, vocab_, false);
  else
    cpu::small_m_gemm(1, vocab_, dim_, x, dim_, w_bf16_, dim_, /*w_kn=*/false, logits, vocab_, false);
}

bool ScreenedHead::screen(const float* x, const float* approx, int64_t k) {
  double nx = 0.0;
  for (int64_t i = 0; i < dim_; ++i) nx += std::fabs(double(x[i]));
  // Zero x would meet an infinite radius as 0 * inf: the full product decides (and reports NaN).
  if (!std::isfinite(nx) || nx == 0.0) return false;
  nx *= kMargin;
  const double* radius = radius_.data();
  int not_finite = 0;
  double threshold = -std::numeric_limits<double>::infinity();  // the k-th largest lower bound
  if (k == 1) {
    // The reductions may be reordered (max and | are exact): lets the compiler vectorise the loop.
#pragma omp simd reduction(max : threshold) reduction(| : not_finite)
    for (int64_t j = 0; j < vocab_; ++j) {
      not_finite |= !(std::fabs(approx[j]) <= std::numeric_limits<float>::max());
      threshold = std::max(threshold, double(approx[j]) - nx * radius[j]);
    }
  } else {
    lower_.resize(size_t(vocab_));
    double* lower = lower_.data();
#pragma omp simd reduction(| : not_finite)
    for (int64_t j = 0; j < vocab_; ++j) {
      not_finite |= !(std::fabs(approx[j]) <= std::numeric_limits<float>::max());
      lower[j] = double(approx[j]) - nx * radius[j];
    }
    std::nth_element(lower_.begin(), lower_.begin() + (k - 1), lower_.end(), std::greater<double>());
    threshold = lower_[size_t(k - 1)];
  }
  if (not_finite) return false;
  candidates_.clear();
  for (int64_t j = 0; j < vocab_; ++j)
    if (double(approx[j]) + nx * radius[j] >= threshold) candidates_.push_back(int32_t(j));
  all_rows_ = int64_t(candidates_.size()) * kFullProductShare > vocab_;
  last_candidates_ += all_rows_ ? vocab_ : int64_t(candidates_.size());
  return true;
}

void ScreenedHead::approximate(int64_t m, const float* x) {
  LD_CHECK(m >= 1 && m <= kMaxRows, "ScreenedHead: ", m, " rows, expected 1..", kMaxRows);
  cpu::int8_rows_gemm(m, vocab_, dim_, x, dim_, q_.data(), dim_, scale_.data(), approx_.data(), vocab_);
  last_candidates_ = 0;
}

bool ScreenedHead::exact_logits(const float* x, const float* approx, int64_t k, float* full) {
  if (!screen(x, approx, k)) return false;
  const auto is_nan = [](float v) { return std::isnan(v); };
  if (all_rows_) {
    full_product(x, full);
    return std::none_of(full, full + vocab_, is_nan);
  }
  exact_.resize(candidates_.size());
  candidate_logits(x, exact_.data());
  return std::none_of(exact_.begin(), exact_.end(), is_nan);
}

bool ScreenedHead::argmax(int64_t m, const float* x, int64_t* out) {
  approximate(m, x);
  full_.resize(size_t(vocab_));
  for (int64_t b = 0; b < m; ++b) {
    if (!exact_logits(x + b * dim_, approx_.data() + b * vocab_, 1, full_.data())) return false;
    // The first maximum is the lowest id (candidates ascend).
    out[b] = all_rows_ ? std::max_element(full_.begin(), full_.end()) - full_.begin()
                       : candidates_[size_t(std::max_element(exact_.begin(), exact_.end()) - exact_.begin())];
  }
  return true;
}

bool ScreenedHead::top_k(int64_t m, const float* x, int64_t k, float* logits) {
  LD_CHECK(k >= 1, "ScreenedHead: top_k needs k >= 1, got ", k);
  approximate(m, x);
  for (int64_t b = 0; b < m; ++b) {
    float* out = logits + b * vocab_;
    if (!exact_logits(x + b * dim_, approx_.data() + b * vocab_, std::min(k, vocab_), out)) return false;
    if (all_rows_) continue;  // out holds the full product
    std::fill(out, out + vocab_, -std::numeric_limits<float>::infinity());
    for (size_t i = 0; i < candidates_.size(); ++i) out[candidates_[i]] = exact_[i];
  }
  return true;
}

}  // namespace ld::infer
