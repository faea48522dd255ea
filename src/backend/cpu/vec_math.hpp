#pragma once
// Vectorisable float math for kernel inner loops. glibc only offers SIMD expf under -ffast-math,
// which we do not want globally; these are plain arithmetic and bit operations, so `#pragma omp
// simd` loops that call them become AVX-512 code. Accuracy: exp within 2 ulp over the float range
// (Cephes expf's polynomial and two-constant range reduction).
#include <bit>
#include <cstdint>

namespace ld::cpu {

inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  float clamped = x > 88.3762626647949f ? 88.3762626647949f : (x < -87.3365478515625f ? -87.3365478515625f : x);
  float n = __builtin_floorf(clamped * kLog2e + 0.5f);
  float r = clamped - n * kLn2Hi - n * kLn2Lo;
  float r2 = r * r;
  float p = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
             1.6666665459e-1f) * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  float scale = std::bit_cast<float>(static_cast<int32_t>((static_cast<int32_t>(n) + 127) << 23));
  return x < -87.3365478515625f ? 0.0f : p * scale;  // exp(-inf) and deep underflow give exactly 0
}

inline float sigmoid_approx(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// tanh(x) = 2 sigmoid(2x) - 1: absolute error ~1e-7, enough where tanh is added to 1 (GELU).
inline float tanh_via_exp(float x) { return 2.0f * sigmoid_approx(2.0f * x) - 1.0f; }

}  // namespace ld::cpu
