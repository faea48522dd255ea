#pragma once
// Vectorisable float math for kernel inner loops. glibc only offers SIMD expf under -ffast-math,
// which we do not want globally; these are plain arithmetic and bit operations, so `#pragma omp
// simd` loops that call them become AVX-512 code.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>

namespace ld::cpu {

// expf to ~2 ulp (Cephes polynomial, two-constant range reduction), branch-free. Inputs below -87
// give 0 (the true value is subnormal), -inf gives 0, NaN stays NaN; inputs above 88 saturate.
inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  float xc = x < -87.0f ? -87.0f : x;
  xc = xc > 88.0f ? 88.0f : xc;
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const int32_t ni = std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(kRound);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>(uint32_t(ni + 127) << 23);
  return x < -87.0f ? 0.0f : p * scale;
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1e-7, enough where tanh is added to 1 (GELU).
inline float tanh_via_exp(float x) { return 2.0f * sigmoid_approx(2.0f * x) - 1.0f; }

// Row reductions with kLanes independent partial results (4 AVX-512 registers), so successive
// adds do not wait on each other.
constexpr int64_t kLanes = 64;

inline float sum_lanes(float* acc) {
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t k = 0; k < width; ++k) acc[k] += acc[k + width];
  return acc[0];
}

inline float max_lanes(float* acc) {
  for (int64_t width = kLanes / 2; width > 0; width /= 2)
    for (int64_t k = 0; k < width; ++k) acc[k] = std::max(acc[k], acc[k + width]);
  return acc[0];
}

// step(j, k) for j in [0, n), with k = j % kLanes the lane that accumulates element j.
template <typename Step>
inline void for_each_lane(int64_t n, Step&& step) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) step(j + k, k);
  }
  const int64_t tail = n - j;
#pragma omp simd
  for (int64_t k = 0; k < tail; ++k) step(j + k, k);
}

// sum_j term(j) for j in [0, n). term may also store (fused passes).
template <typename Term>
inline float lane_sum(int64_t n, Term&& term) {
  alignas(64) float acc[kLanes] = {};
  for_each_lane(n, [&](int64_t j, int64_t k) { acc[k] += term(j); });
  return sum_lanes(acc);
}

inline float row_max(int64_t n, const float* x) {
  alignas(64) float acc[kLanes];
  for (float& a : acc) a = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) acc[k] = x[j + k] > acc[k] ? x[j + k] : acc[k];
  }
  const int64_t tail = n - j;
#pragma omp simd
  for (int64_t k = 0; k < tail; ++k) acc[k] = x[j + k] > acc[k] ? x[j + k] : acc[k];
  return max_lanes(acc);
}

}  // namespace ld::cpu
