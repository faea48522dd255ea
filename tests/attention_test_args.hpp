#pragma once
// The AttentionArgs the CUDA attention tests (tests/cuda on a GPU, tests/cuda_emulation on the CPU)
// give the kernels: q [B, Hq, Tq, D] contiguous, or stored [B, Tq, Hq, D] (strided_q, as a head
// split of a projection leaves it); k, v [B, Hk, Tk, D] and out [B, Hq, Tq, D] contiguous; the
// additive mask, when given, [B, 1, Tq, Tk] broadcast over heads; scale 1/sqrt(D).
#include <cmath>
#include <cstdint>

#include "backend/backend.hpp"

namespace ld::test {

inline AttentionArgs attention_test_args(int64_t B, int64_t Hq, int64_t Hk, int64_t Tq, int64_t Tk, int64_t D,
                                         bool causal, bool strided_q, const float* mask) {
  AttentionArgs a;
  a.batch = B, a.q_heads = Hq, a.kv_heads = Hk, a.q_len = Tq, a.kv_len = Tk, a.head_dim = D;
  a.scale = float(1.0 / std::sqrt(double(D))), a.causal = causal;
  const int64_t strided[3] = {Tq * Hq * D, D, Hq * D}, contiguous[3] = {Hq * Tq * D, Tq * D, D};
  const int64_t kv[3] = {Hk * Tk * D, Tk * D, D};
  for (int i = 0; i < 3; ++i) {
    a.q_stride[i] = strided_q ? strided[i] : contiguous[i];
    a.o_stride[i] = contiguous[i];
    a.k_stride[i] = a.v_stride[i] = kv[i];
  }
  if (mask != nullptr) {
    a.mask = mask;
    const int64_t ms[4] = {Tq * Tk, 0, Tk, 1};
    for (int i = 0; i < 4; ++i) a.mask_stride[i] = ms[i];
  }
  return a;
}

}  // namespace ld::test
