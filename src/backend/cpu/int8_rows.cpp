// Quantisation per row (AVX-512 or scalar); the product is small_m_gemm's W [n, k] kernel on the
// int8 values (16 at a time sign-extended and converted to f32, two instructions), then the scales.
#include "backend/cpu/int8_rows.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/small_m_gemm.hpp"
#include "backend/cpu/spin_pool.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LD_INT8_ROWS_AVX512 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace ld::cpu {

namespace {

// (1 + 2^-22) rounded to nearest still lifts an error by more than its one rounding of 2^-24.
constexpr float kErrMargin = 1.0f + 1.0f / 4194304.0f;

void zero_row(int64_t k, int8_t* q, float& scale, float& max_abs, float& err, bool not_finite) {
  std::fill(q, q + k, int8_t(0));
  scale = 0.0f;
  max_abs = err = not_finite ? std::numeric_limits<float>::infinity() : 0.0f;
}

#if defined(LD_INT8_ROWS_AVX512)

// One row: the largest |w| (NaN seen apart, as max ignores it), then levels and the largest error.
// fma(-s, level, w) rounds w - s * level once, so the true error is within (1 + 2^-24) of it.
void quantize_row(int64_t k, const float* w, int8_t* q, float& scale, float& max_abs, float& err) {
  __m512 vmax = _mm512_setzero_ps();
  __mmask16 nan = 0;
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 lanes = k - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, w + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
  }
  const float m = _mm512_reduce_max_ps(vmax);
  if (nan != 0 || !std::isfinite(m) || m == 0.0f) return zero_row(k, q, scale, max_abs, err, nan != 0 || m != 0.0f);
  const float s = m / 127.0f;
  const __m512 inv = _mm512_set1_ps(127.0f / m), neg_s = _mm512_set1_ps(-s);
  const __m512 top = _mm512_set1_ps(127.0f), bottom = _mm512_set1_ps(-127.0f);
  __m512 verr = _mm512_setzero_ps();
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 lanes = k - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (k - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(lanes, w + i);
    __m512 level = _mm512_roundscale_ps(_mm512_mul_ps(v, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    level = _mm512_min_ps(_mm512_max_ps(level, bottom), top);
    _mm512_mask_cvtsepi32_storeu_epi8(q + i, lanes, _mm512_cvtps_epi32(level));
    verr = _mm512_max_ps(verr, _mm512_abs_ps(_mm512_fmadd_ps(neg_s, level, v)));
  }
  scale = s, max_abs = m, err = _mm512_reduce_max_ps(verr) * kErrMargin;
}

#else

void quantize_row(int64_t k, const float* w, int8_t* q, float& scale, float& max_abs, float& err) {
  float m = 0.0f;
  bool nan = false;
  for (int64_t i = 0; i < k; ++i) nan = nan || std::isnan(w[i]), m = std::max(m, std::fabs(w[i]));
  if (nan || !std::isfinite(m) || m == 0.0f) return zero_row(k, q, scale, max_abs, err, nan || m != 0.0f);
  const float s = m / 127.0f, inv = 127.0f / m;
  float e = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    const float level = std::clamp(std::nearbyint(w[i] * inv), -127.0f, 127.0f);
    q[i] = int8_t(level);
    e = std::max(e, std::fabs(std::fma(-s, level, w[i])));
  }
  scale = s, max_abs = m, err = e * kErrMargin;
}

#endif

}  // namespace

void quantize_rows_int8(int64_t n, int64_t k, const float* w, int64_t ldw, int8_t* q, int64_t ldq, float* scale,
                        float* max_abs, float* err) {
  spin_parallel_ranges(n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) quantize_row(k, w + j * ldw, q + j * ldq, scale[j], max_abs[j], err[j]);
  });
}

void quantize_rows_int8(int64_t n, int64_t k, const uint16_t* w, int64_t ldw, int8_t* q, int64_t ldq, float* scale,
                        float* max_abs, float* err) {
  spin_parallel_ranges(n, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t j = lo; j < hi; ++j) {
      const uint16_t* src = w + j * ldw;
      for (int64_t i = 0; i < k; ++i) row[size_t(i)] = bf16_to_f32(src[i]);
      quantize_row(k, row.data(), q + j * ldq, scale[j], max_abs[j], err[j]);
    }
  });
}

void int8_rows_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const int8_t* q, int64_t ldq,
                    const float* scale, float* y, int64_t ldy) {
  LD_ASSERT(m >= 1 && m <= kInt8RowsMaxM, "int8_rows_gemm: m=", m, " outside 1..", kInt8RowsMaxM);
  small_m_gemm(m, n, k, x, ldx, q, ldq, /*w_kn=*/false, y, ldy, /*accumulate=*/false);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * ldy + j] *= scale[j];
}

}  // namespace ld::cpu
