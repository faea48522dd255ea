#pragma once
// Warp-level tensor-core and async-copy primitives (sm_80+, used on sm_90) for kernels that keep
// their buffers in f32 and round operands to bf16 on the way into the MMA.
//
// mma.sync.m16n8k16 (bf16 in, f32 accumulate): with g = lane / 4 and t = lane % 4, a lane holds
//   A (16x16, row-major), 4 x 32 bits: {A[g][2t..2t+1]}, {A[g+8][2t..]}, {A[g][2t+8..]}, {A[g+8][2t+8..]}
//   B (16x8, k x n),       2 x 32 bits: {B[2t..2t+1][g]}, {B[2t+8..2t+9][g]}
//   C (16x8, f32),         4 floats:    C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]
// Each 32-bit register holds the lower-index element in its low half. So the accumulators of two
// adjacent 16x8 tiles (n = 0..7 and 8..15) are, packed pairwise, exactly the A fragment of a 16x16
// operand: the flash-attention trick that feeds P straight from registers into P V.
#include <cuda_bf16.h>

#include <cstdint>

namespace ld::cuda {

// Two floats rounded to bf16 (nearest even) in one register, lo in the low half.
__device__ inline uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// c += a * b on one 16x8x16 tile (fragments as described above).
__device__ inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16 bytes global -> shared without passing through registers; fills zeros instead when !valid
// (src is then not read, but must still be a mapped address). Both addresses 16-byte aligned.
__device__ inline void cp_async_16(void* smem_dst, const void* gmem_src, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src), "r"(src_bytes)
               : "memory");
}

__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ inline void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

}  // namespace ld::cuda
