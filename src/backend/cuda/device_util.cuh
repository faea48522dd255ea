#pragma once
// Helpers shared by the .cu files: launch shapes, grid-stride maps, warp/block reductions, N-d
// strided indexing, and bit-exact ports of the host's bf16/fp16 conversions and Philox.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_check.hpp"
#include "core/error.hpp"

// LD_CUDA_LAUNCH(kernel, grid, block, smem, stream)(args...) is kernel<<<grid, block, smem, stream>>>(args...).
// The macro exists so that tests/cuda_emulation can compile the launching host code as plain C++
// (LD_SIMT_EMULATION, defined only there: its shim cuda_runtime.h runs the kernel on its emulator).
#ifdef LD_SIMT_EMULATION
#define LD_CUDA_LAUNCH(kernel, grid, block, smem, stream) LD_SIMT_LAUNCH(kernel, grid, block, smem, stream)
#else
#define LD_CUDA_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif

namespace ld::cuda {

constexpr int kThreads = 256;
constexpr int kMaxDims = 8;  // after merging contiguous dims; more is refused with an error

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(std::clamp<int64_t>(blocks, 1, int64_t(1) << 20));  // the kernels loop over the rest
}

template <typename F>
__global__ void map_kernel(int64_t n, F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) f(i);
}

// f(i) for i in [0, n) on the stream.
template <typename F>
void launch_map(cudaStream_t stream, int64_t n, F f) {
  if (n <= 0) return;
  LD_CUDA_LAUNCH(map_kernel, grid_for(n), kThreads, 0, stream)(n, f);
  LD_CUDA_CHECK_LAUNCH();
}

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the block, returned to every thread. blockDim.x is a multiple of 32, <= 1024.
template <typename T, typename Combine>
__device__ T block_reduce(T v, Combine combine, T identity) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int o = 16; o > 0; o >>= 1) v = combine(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) v = combine(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <typename T>
__device__ T block_sum(T v) {
  return block_reduce(v, [](T a, T b) { return a + b; }, T(0));
}
__device__ inline float block_max(float v) {
  return block_reduce(v, [](float a, float b) { return fmaxf(a, b); }, -INFINITY);
}

// An N-d index space (row-major) with K operands' element strides, dims merged where every
// operand is contiguous across them (as the CPU's coalesce_dims does).
template <int K>
struct StridedSpace {
  int ndim = 0;
  int64_t shape[kMaxDims]{};
  int64_t strides[K][kMaxDims]{};
  int64_t numel = 1;

  // Offsets of element i (row-major position) for every operand. The outermost index is what the
  // inner divisions leave (i < numel), so a contiguous copy (one merged dim) divides nothing: a
  // 64-bit division costs tens of instructions, which would make these memory-bound passes
  // compute-bound.
  __device__ void offsets(int64_t i, int64_t* off) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d > 0; --d) {
      const int64_t idx = i % shape[d];
      i /= shape[d];
      for (int k = 0; k < K; ++k) off[k] += idx * strides[k][d];
    }
    if (ndim > 0)
      for (int k = 0; k < K; ++k) off[k] += i * strides[k][0];
  }
};

template <int K>
StridedSpace<K> make_space(int ndim, const int64_t* shape, const int64_t* const* strides) {
  StridedSpace<K> s;
  for (int d = 0; d < ndim; ++d) s.numel *= shape[d];
  int out = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (out > 0) {
      bool merge = true;
      for (int k = 0; k < K; ++k) merge = merge && s.strides[k][out - 1] == strides[k][d] * shape[d];
      if (merge) {
        s.shape[out - 1] *= shape[d];
        for (int k = 0; k < K; ++k) s.strides[k][out - 1] = strides[k][d];
        continue;
      }
    }
    LD_CHECK(out < kMaxDims, "CUDA backend: a strided operation over more than ", kMaxDims,
             " non-mergeable dims is not supported (", ndim, " dims given)");
    s.shape[out] = shape[d];
    for (int k = 0; k < K; ++k) s.strides[k][out] = strides[k][d];
    ++out;
  }
  s.ndim = out;  // 0: a scalar (offsets stay 0)
  return s;
}

// --- bf16/fp16 bit patterns, exactly as core/dtype.{hpp,cpp} convert them on the host.
__device__ inline float bf16_bits_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
__device__ inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

__device__ inline uint16_t f32_to_bf16_stochastic_bits(float f, uint32_t random) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  return uint16_t((u + (random & 0xffffu)) >> 16);
}

__device__ inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {
    int shift = 0;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      ++shift;
    }
    mant &= 0x3ffu;
    u = sign | (uint32_t(113 - shift) << 23) | (mant << 13);
  }
  return __uint_as_float(u);
}

__device__ inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00u);
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00u);
  if (absu < 0x38800000u) {
    if (absu < 0x33000000u) return sign;
    const uint32_t exp = absu >> 23, mant = (absu & 0x7fffffu) | 0x800000u, shift = 126 - exp;
    uint32_t result = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (result & 1u))) ++result;
    return uint16_t(sign | result);
  }
  const uint32_t rounded = absu + 0xfffu + ((absu >> 13) & 1u);
  return uint16_t(sign | (((rounded >> 13) - (112u << 10)) & 0x7fffu));
}

// --- Philox-4x32-10, as core/rng.cpp: element i of a draw uses counter (offset + i/4), lane i%4.
struct Philox4 {
  uint32_t v[4];
};
__device__ inline Philox4 philox4x32(uint64_t key, uint64_t counter_lo) {
  uint32_t c0 = uint32_t(counter_lo), c1 = uint32_t(counter_lo >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c1 = lo1;
    c3 = lo0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}
__device__ inline float unit_float(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

}  // namespace ld::cuda
