#pragma once
// Stand-in for src/backend/cuda/mma_bf16.cuh (inline PTX there): the same functions, carried out
// by the emulator. The fragment layouts live in ../../../simt.hpp (run_mma), taken from the PTX ISA
// rather than from the real header's comments, so a kernel built on a wrong reading of them fails.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace ld::cuda {

inline uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return bits;
}

inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  simt::mma_bf16_16816(c, a, b);
}

inline void cp_async_16(void* smem_dst, const void* gmem_src, bool valid) {
  simt::cp_async_16(smem_dst, gmem_src, valid);
}
inline void cp_async_commit() { simt::cp_async_commit(); }
template <int pending>
inline void cp_async_wait() {
  simt::cp_async_wait(pending);
}

}  // namespace ld::cuda
