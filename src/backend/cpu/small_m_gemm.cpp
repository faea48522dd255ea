// Y[m, n] = X[m, k] W^T (W [n, k], a Linear) or X W (W [k, n], a Conv1D) for m <= 8 (decoding).
// W [n, k]: per block of R rows of W, M*R accumulators of 16 lanes run over k; every W vector is
// loaded once and used by all M rows of X (X is small and stays in L1). R shrinks as M grows so the accumulators fit the 32 vector registers. W [k, n]: per block
// of 16*NB columns, the accumulators are rows of Y and each row of W is broadcast-multiplied; for
// one row of X, whole rows of W are summed in L1 instead (one_row_kn). The outputs (for one_row_kn
// the rows of W) are split into contiguous ranges that SpinPool's threads claim, so each core
// streams its own parts of W.
#include "backend/cpu/small_m_gemm.hpp"

#include "backend/cpu/spin_pool.hpp"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
// GCC 12's own intrinsics trip -Wuninitialized (_mm512_undefined_ps initialises itself); the
// warning points into the header, so it is silenced there (as in attention.cpp).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "core/dtype.hpp"
#include "core/error.hpp"

// The vector kernels need AVX-512 F, BW (16-bit masked loads) and VL; otherwise the same blocking
// runs as scalar loops (the portable preset).
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define LD_SMALL_M_AVX512 1
#endif

namespace ld::cpu {

namespace {

// Below this many multiply-adds (512 KB of f32 weights) one thread does it all: a decode step is a
// chain of such products, and below it the second core does not pay for the hand-off even from the
// spinning SpinPool (quiet 2-core VM: tiny decode 4316 against 3432 tok/s with a 2 MB floor).
constexpr int64_t kMinParallelWork = int64_t(1) << 17;

// body(lo, hi) over [0, n): split between SpinPool's threads (boundaries at multiples of align) when
// `work` multiply-adds pay for the hand-off, else on the caller.
template <typename Body>
void split_if_worth(int64_t n, int64_t work, int64_t align, Body&& body) {
  if (work < kMinParallelWork || omp_get_max_threads() == 1) return body(int64_t(0), n);
  spin_parallel_ranges(n, align, body);
}

#if defined(LD_SMALL_M_AVX512)

inline __m512 load16(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
inline __m512 load16(const uint16_t* p, __mmask16 mask) {
  // bf16 -> f32 is the upper half of the f32 bit pattern
  __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 load16(const int8_t* p, __mmask16 mask) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, p)));
}
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline __m512 load16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// Rows [0, R) of w against rows [0, M) of x.
template <int M, int R, typename W>
void block(int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, bool accumulate) {
  __m512 acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  int64_t kk = 0;
  for (; kk + 16 <= k; kk += 16) {
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load16(w + r * ldw + kk);
    for (int i = 0; i < M; ++i) {
      __m512 xv = _mm512_loadu_ps(x + i * ldx + kk);
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
    }
  }
  if (kk < k) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k - kk)) - 1u);
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load16(w + r * ldw + kk, mask);
    for (int i = 0; i < M; ++i) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + i * ldx + kk);
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) {
      float s = _mm512_reduce_add_ps(acc[i][r]);
      y[i * ldy + r] = accumulate ? y[i * ldy + r] + s : s;
    }
}

// W read as [k, n] (x @ W, Hugging Face's Conv1D): columns [0, 16*NB) of w for rows [0, M) of x,
// broadcasting x[i, kk] against NB vectors of row kk of W. cols_left < 16*NB masks the last vector.
template <int M, int NB, typename W>
void block_kn(int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, bool accumulate,
              int64_t cols) {
  __m512 acc[M][NB];
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < NB; ++c) acc[i][c] = _mm512_setzero_ps();
  __mmask16 mask[NB];
  for (int c = 0; c < NB; ++c) {
    const int64_t left = std::clamp<int64_t>(cols - 16 * c, 0, 16);
    mask[c] = static_cast<__mmask16>((1u << left) - 1u);
  }
  const bool full = cols >= 16 * NB;
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 wv[NB];
    if (full)
      for (int c = 0; c < NB; ++c) wv[c] = load16(w + kk * ldw + 16 * c);
    else
      for (int c = 0; c < NB; ++c) wv[c] = load16(w + kk * ldw + 16 * c, mask[c]);
    for (int i = 0; i < M; ++i) {
      __m512 xv = _mm512_set1_ps(x[i * ldx + kk]);
      for (int c = 0; c < NB; ++c) acc[i][c] = _mm512_fmadd_ps(xv, wv[c], acc[i][c]);
    }
  }
  for (int i = 0; i < M; ++i)
    for (int c = 0; c < NB; ++c) {
      float* dst = y + i * ldy + 16 * c;
      __m512 v = accumulate ? _mm512_add_ps(acc[i][c], _mm512_maskz_loadu_ps(mask[c], dst)) : acc[i][c];
      _mm512_mask_storeu_ps(dst, mask[c], v);
    }
}

inline __mmask16 lanes16(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1u);
}

// sum[0, n) (+)= x[lo, hi) W[lo:hi, :] for f32 W [k, n], four whole rows of W at a time, the sums
// kept in L1. keep: add onto sum instead of starting from zero.
void rows_kn(int64_t lo, int64_t hi, int64_t n, const float* x, const float* w, int64_t ldw, float* sum, bool keep) {
  const int64_t full = n / 16 * 16;
  const __mmask16 tail = lanes16(n - full);
  if (!keep) {
    // Zeroing first measured faster than a first pass that stores x * w (small decode).
    for (int64_t j = 0; j < full; j += 16) _mm512_storeu_ps(sum + j, _mm512_setzero_ps());
    if (tail) _mm512_mask_storeu_ps(sum + full, tail, _mm512_setzero_ps());
  }
  int64_t kk = lo;
  for (; kk + 4 <= hi; kk += 4) {
    const float* w0 = w + kk * ldw;
    const __m512 x0 = _mm512_set1_ps(x[kk]), x1 = _mm512_set1_ps(x[kk + 1]);
    const __m512 x2 = _mm512_set1_ps(x[kk + 2]), x3 = _mm512_set1_ps(x[kk + 3]);
    for (int64_t j = 0; j < full; j += 16) {
      __m512 a = _mm512_fmadd_ps(x0, _mm512_loadu_ps(w0 + j), _mm512_loadu_ps(sum + j));
      a = _mm512_fmadd_ps(x1, _mm512_loadu_ps(w0 + ldw + j), a);
      a = _mm512_fmadd_ps(x2, _mm512_loadu_ps(w0 + 2 * ldw + j), a);
      a = _mm512_fmadd_ps(x3, _mm512_loadu_ps(w0 + 3 * ldw + j), a);
      _mm512_storeu_ps(sum + j, a);
    }
    if (tail) {
      __m512 a = _mm512_fmadd_ps(x0, load16(w0 + full, tail), load16(sum + full, tail));
      a = _mm512_fmadd_ps(x1, load16(w0 + ldw + full, tail), a);
      a = _mm512_fmadd_ps(x2, load16(w0 + 2 * ldw + full, tail), a);
      a = _mm512_fmadd_ps(x3, load16(w0 + 3 * ldw + full, tail), a);
      _mm512_mask_storeu_ps(sum + full, tail, a);
    }
  }
  for (; kk < hi; ++kk) {
    const __m512 xv = _mm512_set1_ps(x[kk]);
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = lanes16(n - j);
      _mm512_mask_storeu_ps(sum + j, m,
                            _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(m, w + kk * ldw + j),
                                            _mm512_maskz_loadu_ps(m, sum + j)));
    }
  }
}

// One row of X against f32 W [k, n], the rows of W split between the threads: each streams one
// contiguous run of whole rows (rows_kn) and the first thread's sums land in y, the others' in a
// buffer added at the end. Column strips (block_kn, the sums in registers) read 512-byte pieces of
// rows n floats apart, which the prefetchers follow worse: small decode's products 0.87 against
// 0.71 ms per token, tiny's 0.16 against 0.12 ms.
void one_row_kn(int64_t n, int64_t k, const float* x, const float* w, int64_t ldw, float* y, bool accumulate) {
  if (n * k < kMinParallelWork || omp_get_max_threads() == 1) return rows_kn(0, k, n, x, w, ldw, y, accumulate);
  const int64_t length = spin_range_length(k, 4);
  const int64_t others = (k + length - 1) / length - 1;
  thread_local std::vector<float> sum_buffer;  // the caller's; the workers get the pointer
  sum_buffer.resize(static_cast<size_t>(others * n));
  float* sums = sum_buffer.data();
  spin_parallel_ranges(k, 4, [&](int64_t lo, int64_t hi) {
    if (lo == 0) return rows_kn(lo, hi, n, x, w, ldw, y, accumulate);
    rows_kn(lo, hi, n, x, w, ldw, sums + (lo / length - 1) * n, false);
  });
  for (int64_t t = 0; t < others; ++t)
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = lanes16(n - j);
      _mm512_mask_storeu_ps(y + j, m,
                            _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + j), _mm512_maskz_loadu_ps(m, sums + t * n + j)));
    }
}

#endif

#if defined(LD_SMALL_M_AVX512)

// bf16 weights 32 at a time: a 32-bit lane of W holds w[2t] in its low half and w[2t+1] in its high
// half, so one shift and one AND widen them to f32 with no lane shuffle (vpmovzxwd is one, and it
// capped the bf16 kernel at the f32 kernel's speed). The even and odd elements then meet X
// de-interleaved the same way (deinterleave_rows), or, for W [k, n], fill separate accumulators for
// the even and odd columns that are interleaved back once at the end.
inline void widen_pairs(__m512i v, __m512& lo, __m512& hi) {
  lo = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  hi = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
}

inline __mmask32 lanes32(int64_t left) {
  return left >= 32 ? ~__mmask32(0) : left <= 0 ? __mmask32(0) : __mmask32((uint32_t(1) << left) - 1u);
}
// Masked 16-bit loads measured slow on this CPU (Zen 4): full vectors load plainly.
inline __m512i load32(const uint16_t* p, __mmask32 mask) {
  return mask == ~__mmask32(0) ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi16(mask, p);
}
// X rows [M, k] -> [M, kp] (kp = k rounded up to 32): per 32 elements, the 16 even ones then the 16
// odd ones, zero-padded.
void deinterleave_rows(int64_t m, int64_t k, const float* x, int64_t ldx, float* xd, int64_t kp) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < kp; c += 32)
      for (int64_t t = 0; t < 16; ++t) {
        const int64_t e = c + 2 * t, o = e + 1;
        xd[i * kp + c + t] = e < k ? x[i * ldx + e] : 0.0f;
        xd[i * kp + c + 16 + t] = o < k ? x[i * ldx + o] : 0.0f;
      }
}

// Rows [0, R) of W [n, k] bf16 against de-interleaved X.
template <int M, int R>
void block_pairs(int64_t k, const float* xd, int64_t kp, const uint16_t* w, int64_t ldw, float* y, int64_t ldy,
                 bool accumulate) {
  __m512 acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; kk += 32) {
    const __mmask32 mask = lanes32(k - kk);
    __m512 lo[R], hi[R];
    for (int r = 0; r < R; ++r) widen_pairs(load32(w + r * ldw + kk, mask), lo[r], hi[r]);
    for (int i = 0; i < M; ++i) {
      const __m512 xe = _mm512_loadu_ps(xd + i * kp + kk), xo = _mm512_loadu_ps(xd + i * kp + kk + 16);
      for (int r = 0; r < R; ++r) acc[i][r] = _mm512_fmadd_ps(xo, hi[r], _mm512_fmadd_ps(xe, lo[r], acc[i][r]));
    }
  }
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) {
      float s = _mm512_reduce_add_ps(acc[i][r]);
      y[i * ldy + r] = accumulate ? y[i * ldy + r] + s : s;
    }
}

// Columns [0, min(cols, 128)) of W [k, n] bf16: 4 loads of 32 columns per row of W.
template <int M>
void block_kn_pairs(int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy,
                    bool accumulate, int64_t cols) {
  constexpr int Q = 4;
  __m512 even[M][Q], odd[M][Q];
  __mmask32 mask[Q];
  for (int q = 0; q < Q; ++q) {
    mask[q] = lanes32(cols - 32 * q);
    for (int i = 0; i < M; ++i) even[i][q] = odd[i][q] = _mm512_setzero_ps();
  }
  for (int64_t kk = 0; kk < k; ++kk) {
    __m512 lo[Q], hi[Q];
    for (int q = 0; q < Q; ++q) widen_pairs(load32(w + kk * ldw + 32 * q, mask[q]), lo[q], hi[q]);
    for (int i = 0; i < M; ++i) {
      const __m512 xb = _mm512_set1_ps(x[i * ldx + kk]);
      for (int q = 0; q < Q; ++q) {
        even[i][q] = _mm512_fmadd_ps(xb, lo[q], even[i][q]);
        odd[i][q] = _mm512_fmadd_ps(xb, hi[q], odd[i][q]);
      }
    }
  }
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int i = 0; i < M; ++i)
    for (int q = 0; q < Q; ++q)
      for (int half = 0; half < 2; ++half) {
        const int64_t c0 = 32 * q + 16 * half;
        const __mmask16 m16 = lanes16(cols - c0);
        if (m16 == 0) continue;
        float* dst = y + i * ldy + c0;
        __m512 v = _mm512_permutex2var_ps(even[i][q], half ? second : first, odd[i][q]);
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m16, dst));
        _mm512_mask_storeu_ps(dst, m16, v);
      }
}

// sums (+)= x[lo, hi) W[lo:hi, :] for bf16 W [k, n], four whole rows of W at a time, the sums kept
// in L1 in pairs layout: per 32 columns, the 16 even ones then the 16 odd ones (widen_pairs).
void rows_kn_pairs(int64_t lo, int64_t hi, int64_t n, const float* x, const uint16_t* w, int64_t ldw, float* sum) {
  const int64_t groups = (n + 31) / 32;
  std::fill(sum, sum + groups * 32, 0.0f);
  int64_t kk = lo;
  for (; kk + 4 <= hi; kk += 4) {
    const uint16_t* w0 = w + kk * ldw;
    const __m512 x0 = _mm512_set1_ps(x[kk]), x1 = _mm512_set1_ps(x[kk + 1]);
    const __m512 x2 = _mm512_set1_ps(x[kk + 2]), x3 = _mm512_set1_ps(x[kk + 3]);
    for (int64_t g = 0; g < groups; ++g) {
      const __mmask32 mask = lanes32(n - 32 * g);
      __m512 even = _mm512_loadu_ps(sum + 32 * g), odd = _mm512_loadu_ps(sum + 32 * g + 16), l, h;
      widen_pairs(load32(w0 + 32 * g, mask), l, h);
      even = _mm512_fmadd_ps(x0, l, even), odd = _mm512_fmadd_ps(x0, h, odd);
      widen_pairs(load32(w0 + ldw + 32 * g, mask), l, h);
      even = _mm512_fmadd_ps(x1, l, even), odd = _mm512_fmadd_ps(x1, h, odd);
      widen_pairs(load32(w0 + 2 * ldw + 32 * g, mask), l, h);
      even = _mm512_fmadd_ps(x2, l, even), odd = _mm512_fmadd_ps(x2, h, odd);
      widen_pairs(load32(w0 + 3 * ldw + 32 * g, mask), l, h);
      even = _mm512_fmadd_ps(x3, l, even), odd = _mm512_fmadd_ps(x3, h, odd);
      _mm512_storeu_ps(sum + 32 * g, even);
      _mm512_storeu_ps(sum + 32 * g + 16, odd);
    }
  }
  for (; kk < hi; ++kk) {
    const __m512 xv = _mm512_set1_ps(x[kk]);
    for (int64_t g = 0; g < groups; ++g) {
      __m512 l, h;
      widen_pairs(load32(w + kk * ldw + 32 * g, lanes32(n - 32 * g)), l, h);
      _mm512_storeu_ps(sum + 32 * g, _mm512_fmadd_ps(xv, l, _mm512_loadu_ps(sum + 32 * g)));
      _mm512_storeu_ps(sum + 32 * g + 16, _mm512_fmadd_ps(xv, h, _mm512_loadu_ps(sum + 32 * g + 16)));
    }
  }
}

// One row of X against bf16 W [k, n], the rows of W split between the threads as in one_row_kn:
// each thread's sums (pairs layout) land in its own buffer, added and interleaved into y at the end.
// Column ranges per thread (half rows four at a time) read GPT-2 124M's Conv1D weights at 36 GB/s
// where a plain read runs at 52.
void one_row_kn(int64_t n, int64_t k, const float* x, const uint16_t* w, int64_t ldw, float* y, bool accumulate) {
  const int64_t groups = (n + 31) / 32, stride = groups * 32;
  const bool parallel = n * k >= kMinParallelWork && omp_get_max_threads() > 1;
  const int64_t length = parallel ? spin_range_length(k, 4) : k;
  const int64_t chunks = (k + length - 1) / length;
  thread_local std::vector<float> sum_buffer;  // the caller's; the workers get the pointer
  sum_buffer.resize(static_cast<size_t>(chunks * stride));
  float* sums = sum_buffer.data();
  auto body = [&](int64_t lo, int64_t hi) { rows_kn_pairs(lo, hi, n, x, w, ldw, sums + lo / length * stride); };
  if (parallel)
    spin_parallel_ranges(k, 4, body);
  else
    body(0, k);
  const __m512i first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t g = 0; g < groups; ++g) {
    __m512 even = _mm512_loadu_ps(sums + 32 * g), odd = _mm512_loadu_ps(sums + 32 * g + 16);
    for (int64_t t = 1; t < chunks; ++t) {
      even = _mm512_add_ps(even, _mm512_loadu_ps(sums + t * stride + 32 * g));
      odd = _mm512_add_ps(odd, _mm512_loadu_ps(sums + t * stride + 32 * g + 16));
    }
    for (int half = 0; half < 2; ++half) {
      const int64_t c0 = 32 * g + 16 * half;
      const __mmask16 m16 = lanes16(n - c0);
      if (m16 == 0) continue;
      __m512 v = _mm512_permutex2var_ps(even, half ? second : first, odd);
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m16, y + c0));
      _mm512_mask_storeu_ps(y + c0, m16, v);
    }
  }
}

template <int M>
void row_range_pairs(int64_t lo, int64_t hi, int64_t k, const float* xd, int64_t kp, const uint16_t* w, int64_t ldw,
                     float* y, int64_t ldy, bool accumulate) {
  constexpr int R = M == 1 ? 8 : M <= 4 ? 4 : 2;
  int64_t j = lo;
  for (; j + R <= hi; j += R) block_pairs<M, R>(k, xd, kp, w + j * ldw, ldw, y + j, ldy, accumulate);
  for (; j < hi; ++j) block_pairs<M, 1>(k, xd, kp, w + j * ldw, ldw, y + j, ldy, accumulate);
}

template <int M>
void col_range_pairs(int64_t lo, int64_t hi, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                     float* y, int64_t ldy, bool accumulate) {
  for (int64_t j = lo; j < hi; j += 128) block_kn_pairs<M>(k, x, ldx, w + j, ldw, y + j, ldy, accumulate, hi - j);
}

#endif

#if !defined(LD_SMALL_M_AVX512)  // portable build: the same blocking, scalar

inline float widen(float v) { return v; }
inline float widen(uint16_t v) { return bf16_to_f32(v); }
inline float widen(int8_t v) { return float(v); }

template <int M, int R, typename W>
void block(int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, bool accumulate) {
  for (int i = 0; i < M; ++i)
    for (int r = 0; r < R; ++r) {
      float s = 0.0f;
      for (int64_t kk = 0; kk < k; ++kk) s += x[i * ldx + kk] * widen(w[r * ldw + kk]);
      y[i * ldy + r] = accumulate ? y[i * ldy + r] + s : s;
    }
}

template <int M, int NB, typename W>
void block_kn(int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, bool accumulate,
              int64_t cols) {
  cols = std::min<int64_t>(cols, 16 * NB);
  for (int i = 0; i < M; ++i)
    for (int64_t c = 0; c < cols; ++c) {
      float s = 0.0f;
      for (int64_t kk = 0; kk < k; ++kk) s += x[i * ldx + kk] * widen(w[kk * ldw + c]);
      y[i * ldy + c] = accumulate ? y[i * ldy + c] + s : s;
    }
}

#endif

// Columns [lo, hi) of W [k, n] for M rows of X. Its narrow column strips stream W badly for larger
// M, so gemm.cpp sends those to sgemm (kMaxRowsKn).
template <int M, typename W>
void col_range(int64_t lo, int64_t hi, int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y,
               int64_t ldy, bool accumulate) {
  constexpr int NB = M <= 2 ? 8 : M <= 4 ? 4 : 2;
  for (int64_t j = lo; j < hi; j += 16 * NB) block_kn<M, NB>(k, x, ldx, w + j, ldw, y + j, ldy, accumulate, hi - j);
}

// Rows [lo, hi) of W for M rows of X.
template <int M, typename W>
void row_range(int64_t lo, int64_t hi, int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, float* y,
               int64_t ldy, bool accumulate) {
  constexpr int R = M <= 2 ? 8 : M <= 4 ? 4 : 2;
  int64_t j = lo;
  for (; j + R <= hi; j += R) block<M, R>(k, x, ldx, w + j * ldw, ldw, y + j, ldy, accumulate);
  for (; j < hi; ++j) block<M, 1>(k, x, ldx, w + j * ldw, ldw, y + j, ldy, accumulate);
}

template <int M, typename W>
void run_m(int64_t n, int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, bool w_kn, float* y,
           int64_t ldy, bool accumulate) {
  constexpr bool kn_layout = !std::is_same_v<W, int8_t>;  // int8 W comes as [n, k] only (dispatch)
#if defined(LD_SMALL_M_AVX512)
  if constexpr (M == 1 && kn_layout) {
    if (w_kn) return one_row_kn(n, k, x, w, ldw, y, accumulate);
  }
#endif
  // Chunks in multiples of 8 rows of W [n, k], so each thread's blocks are full but its last, and
  // of 16 columns of W [k, n]: 128 (a whole block) split n = 384 into 256 + 128 (small decode 1130
  // against 1200 tok/s with 16).
  const int64_t align = w_kn ? 16 : 8;
#if defined(LD_SMALL_M_AVX512)
  constexpr bool paired = std::is_same_v<W, uint16_t>;
  const int64_t kp = (k + 31) / 32 * 32;
  thread_local std::vector<float> xd_buffer;  // the caller's; the workers get the pointer
  if (paired && !w_kn) {
    xd_buffer.resize(static_cast<size_t>(M * kp));
    deinterleave_rows(M, k, x, ldx, xd_buffer.data(), kp);
  }
  const float* xd = xd_buffer.data();
#endif
  auto range = [&](int64_t lo, int64_t hi) {
#if defined(LD_SMALL_M_AVX512)
    if constexpr (paired) {
      if constexpr (M <= kMaxRowsKn) {
        if (w_kn) return col_range_pairs<M>(lo, hi, k, x, ldx, w, ldw, y, ldy, accumulate);
      }
      return row_range_pairs<M>(lo, hi, k, xd, kp, w, ldw, y, ldy, accumulate);
    }
#endif
    if constexpr (M <= kMaxRowsKn && kn_layout) {
      if (w_kn) return col_range<M>(lo, hi, k, x, ldx, w, ldw, y, ldy, accumulate);
    }
    row_range<M>(lo, hi, k, x, ldx, w, ldw, y, ldy, accumulate);
  };
  split_if_worth(n, M * n * k, align, range);
}

template <typename W>
void dispatch(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const W* w, int64_t ldw, bool w_kn,
              float* y, int64_t ldy, bool accumulate) {
  LD_ASSERT(m >= 1 && m <= (w_kn ? kMaxRowsKn : kSmallMMax), "small_m_gemm: m=", m, " too large (W [k, n]: ", w_kn,
            ")");
  LD_ASSERT(!(std::is_same_v<W, int8_t> && w_kn), "small_m_gemm: int8 W must be [n, k]");
  switch (m) {
    case 1: return run_m<1>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    case 2: return run_m<2>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    case 3: return run_m<3>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    case 4: return run_m<4>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    case 5: return run_m<5>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    case 6: return run_m<6>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    case 7: return run_m<7>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
    default: return run_m<8>(n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
  }
}

// The rows of W [n, k] listed in rows, each through the block run_m<1> gives it, so each result is
// the one small_m_gemm(1, n, ...) computes for that row.
template <typename W>
void selected_rows(int64_t k, const float* x, const W* w, int64_t ldw, const int32_t* rows, int64_t count, float* y) {
#if defined(LD_SMALL_M_AVX512)
  if constexpr (std::is_same_v<W, uint16_t>) {
    const int64_t kp = (k + 31) / 32 * 32;
    thread_local std::vector<float> xd_buffer;  // the caller's; the workers get the pointer
    xd_buffer.resize(static_cast<size_t>(kp));
    deinterleave_rows(1, k, x, k, xd_buffer.data(), kp);
    const float* xd = xd_buffer.data();
    return split_if_worth(count, count * k, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) block_pairs<1, 1>(k, xd, kp, w + rows[i] * ldw, ldw, y + i, 1, false);
    });
  }
#endif
  split_if_worth(count, count * k, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) block<1, 1>(k, x, k, w + rows[i] * ldw, ldw, y + i, 1, false);
  });
}

}  // namespace

void small_m_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const int8_t* w, int64_t ldw, bool w_kn,
                  float* y, int64_t ldy, bool accumulate) {
  dispatch(m, n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
}

void small_m_gemm_rows(int64_t k, const float* x, const float* w, int64_t ldw, const int32_t* rows, int64_t count,
                       float* y) {
  selected_rows(k, x, w, ldw, rows, count, y);
}

void small_m_gemm_rows(int64_t k, const float* x, const uint16_t* w, int64_t ldw, const int32_t* rows, int64_t count,
                       float* y) {
  selected_rows(k, x, w, ldw, rows, count, y);
}

void small_m_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, bool w_kn,
                  float* y, int64_t ldy, bool accumulate) {
  dispatch(m, n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
}

void small_m_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                  bool w_kn, float* y, int64_t ldy, bool accumulate) {
  dispatch(m, n, k, x, ldx, w, ldw, w_kn, y, ldy, accumulate);
}

}  // namespace ld::cpu
