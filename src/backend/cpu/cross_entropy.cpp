// Fused log-softmax + NLL (with label smoothing and ignore_index) over rows of logits. The forward
// reads each row once: an online max / log-sum-exp over chunks that fit in L1 (each chunk's max
// pass and exp pass read cache, not memory), and keeps only lse per row. The backward recomputes
// softmax from lse and writes dlogits directly, so no probability tensor is ever stored. 16-bit
// logits (an LM head's under autocast) are widened a row at a time into a per-thread buffer, and
// their dlogits computed there and rounded once into place.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/half_rows.hpp"
#include "backend/cpu/vec_math.hpp"

namespace ld {

namespace {

using cpu::exp_approx;
using cpu::kLanes;
using cpu::max_lanes;
using cpu::sum_lanes;

constexpr int64_t kChunk = 4096;  // 16 KB of a row: read from memory once, then from L1

// Row r of 16-bit logits widened into buf.
float* widened_row(const CrossEntropyArgs& a, int64_t r, std::vector<float>& buf) {
  buf.resize(size_t(a.vocab));
  const uint16_t* src = static_cast<const uint16_t*>(a.logits) + r * logits_row_stride(a);
  if (a.logits_dtype == DType::bf16)
    cpu::widen_bf16_row(src, a.vocab, buf.data());
  else
    cpu::widen_f16_row(src, a.vocab, buf.data());
  return buf.data();
}

// Row r of the logits in f32: in place, or widened into buf.
const float* row_f32(const CrossEntropyArgs& a, int64_t r, std::vector<float>& buf) {
  if (a.logits_dtype == DType::f32) return static_cast<const float*>(a.logits) + r * logits_row_stride(a);
  return widened_row(a, r, buf);
}

inline int64_t target_of(const CrossEntropyArgs& a, int64_t row) {
  return a.target_dtype == DType::i32 ? int64_t(static_cast<const int32_t*>(a.targets)[row])
                                      : static_cast<const int64_t*>(a.targets)[row];
}

// Max (and, when label smoothing needs it, the sum) of one chunk.
template <bool kWithSum>
inline void chunk_max_sum(int64_t n, const float* x, float* max_out, float* sum_out) {
  alignas(64) float mx[kLanes];
  alignas(64) float sm[kLanes] = {};
  for (float& v : mx) v = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) {
      mx[k] = x[j + k] > mx[k] ? x[j + k] : mx[k];
      if constexpr (kWithSum) sm[k] += x[j + k];
    }
  }
  const int64_t tail = n - j;
#pragma omp simd
  for (int64_t k = 0; k < tail; ++k) {
    mx[k] = x[j + k] > mx[k] ? x[j + k] : mx[k];
    if constexpr (kWithSum) sm[k] += x[j + k];
  }
  *max_out = max_lanes(mx);
  *sum_out = kWithSum ? sum_lanes(sm) : 0.0f;
}

inline float chunk_sum_exp(int64_t n, const float* x, float shift) {
  alignas(64) float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) acc[k] += exp_approx(x[j + k] - shift);
  }
  const int64_t tail = n - j;
#pragma omp simd
  for (int64_t k = 0; k < tail; ++k) acc[k] += exp_approx(x[j + k] - shift);
  return sum_lanes(acc);
}

// Online log-sum-exp of a row as max + log(sum exp(x - max)) (kept apart so losses can subtract
// logits from the max first), and the row's sum of logits when kWithSum.
template <bool kWithSum>
void row_lse(int64_t n, const float* x, float* max_out, float* log_sum_out, float* sum_out) {
  float m = -std::numeric_limits<float>::infinity(), s = 0.0f, total = 0.0f;
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t len = std::min(kChunk, n - c0);
    float cmax, csum;
    chunk_max_sum<kWithSum>(len, x + c0, &cmax, &csum);
    total += csum;
    if (cmax > m) {  // rescale what was summed against the old max
      s *= exp_approx(m - cmax);
      m = cmax;
    }
    s += chunk_sum_exp(len, x + c0, m);
  }
  *max_out = m;
  *log_sum_out = std::log(s);
  *sum_out = total;
}

template <bool kWithSum>
void forward_rows(const CrossEntropyArgs& a, float* loss_rows, float* lse) {
  const int64_t vocab = a.vocab;
  const float e = a.label_smoothing;
#pragma omp parallel for schedule(static) if (a.rows * vocab > (int64_t(1) << 15))
  for (int64_t r = 0; r < a.rows; ++r) {
    const int64_t target = target_of(a, r);
    if (target == a.ignore_index) {
      loss_rows[r] = 0.0f;
      lse[r] = 0.0f;
      continue;
    }
    thread_local std::vector<float> buf;
    const float* x = row_f32(a, r, buf);
    float m, log_s, total;
    row_lse<kWithSum>(vocab, x, &m, &log_s, &total);
    const float nll = (m - x[target]) + log_s;
    // mean_j(-log p_j) = lse - mean_j(x_j)
    loss_rows[r] = kWithSum ? (1.0f - e) * nll + e * ((m - total / float(vocab)) + log_s) : nll;
    lse[r] = m + log_s;
  }
}

// d = (softmax(x) - (1-e) * onehot(target) - e/V) * scale over one row; d may be x.
void backward_row(const float* x, int64_t vocab, int64_t target, float lse, float scale, float e, float* d) {
  const float uniform = e / float(vocab) * scale;
#pragma omp simd
  for (int64_t j = 0; j < vocab; ++j) d[j] = exp_approx(x[j] - lse) * scale - uniform;
  d[target] -= (1.0f - e) * scale;
}

}  // namespace

void CpuBackend::cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse) {
  check_cross_entropy_args(a);
  if (a.label_smoothing > 0.0f)
    forward_rows<true>(a, loss_rows, lse);
  else
    forward_rows<false>(a, loss_rows, lse);
}

// dlogits = (softmax - (1-e) * onehot(target) - e/V) * dloss_rows[row]; ignored rows get 0.
void CpuBackend::cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows,
                                        void* dlogits) {
  check_cross_entropy_args(a);
  const int64_t vocab = a.vocab, ld = logits_row_stride(a);
  const size_t element = dtype_size(a.logits_dtype);
#pragma omp parallel for schedule(static) if (a.rows * vocab > (int64_t(1) << 15))
  for (int64_t r = 0; r < a.rows; ++r) {
    char* d = static_cast<char*>(dlogits) + size_t(r * ld) * element;
    const int64_t target = target_of(a, r);
    if (target == a.ignore_index) {
      std::memset(d, 0, size_t(vocab) * element);
      continue;
    }
    if (a.logits_dtype == DType::f32) {
      backward_row(static_cast<const float*>(a.logits) + r * ld, vocab, target, lse[r], dloss_rows[r],
                   a.label_smoothing, reinterpret_cast<float*>(d));
      continue;
    }
    thread_local std::vector<float> buf;
    float* x = widened_row(a, r, buf);  // computed in place there, then rounded once
    backward_row(x, vocab, target, lse[r], dloss_rows[r], a.label_smoothing, x);
    if (a.logits_dtype == DType::bf16)
      cpu::to_bf16_row(x, vocab, reinterpret_cast<uint16_t*>(d));
    else
      cpu::to_f16_row(x, vocab, reinterpret_cast<uint16_t*>(d));
  }
}

}  // namespace ld
