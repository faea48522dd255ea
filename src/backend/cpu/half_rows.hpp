#pragma once
// Rows of f32 rounded to bf16/fp16 and back, bit for bit as core/dtype.hpp converts one value (round
// to nearest even, NaN kept a NaN, denormals kept): a copy to a bf16 tensor and a bf16 GEMM's
// operand packing round the same way, so an operand rounded once by the first equals what the
// second would have made of it.
#include <cstdint>

#include <immintrin.h>

#include "core/dtype.hpp"

namespace ld::cpu {

inline void to_bf16_row(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
#if defined(__AVX512F__)
  // Integer rounding, as f32_to_bf16 does: VCVTNEPS2BF16 would flush denormal inputs to zero. The
  // maskz forms: GCC 12 warns that the unmasked ones read an uninitialised register.
  const __m512i one = _mm512_set1_epi32(1), half_minus_one = _mm512_set1_epi32(0x7fff);
  const __m512i quiet = _mm512_set1_epi32(0x00400000);
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(src + i);
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(0xffff, u, 16), one);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, half_minus_one));
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(u, quiet));
    const __m256i high_halves = _mm512_maskz_cvtepi32_epi16(0xffff, _mm512_maskz_srli_epi32(0xffff, r, 16));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), high_halves);
  }
#endif
  for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}

inline void to_f16_row(const float* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

inline void round_bf16_row(const float* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(f32_to_bf16(src[i]));
}

inline void round_f16_row(const float* src, int64_t n, float* dst) {
  int64_t i = 0;
#if defined(__AVX512F__)
  // The maskz forms: GCC 12 warns that the unmasked ones read an uninitialised register.
  for (; i + 16 <= n; i += 16) {
    __m256i h = _mm512_maskz_cvtps_ph(0xffff, _mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm512_storeu_ps(dst + i, _mm512_maskz_cvtph_ps(0xffff, h));
  }
#endif
  for (; i < n; ++i) dst[i] = f16_to_f32(f32_to_f16(src[i]));
}

inline void widen_bf16_row(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

inline void widen_f16_row(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

inline void copy_half_row(const uint16_t* src, int64_t n, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

}  // namespace ld::cpu
