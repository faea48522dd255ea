#pragma once
// Stand-in for <cuda_runtime.h> when tests/cuda_emulation compiles real .cu source as host C++ (this
// folder comes first on that target's include path). It maps the CUDA C++ the kernels use onto the
// emulator (../simt.hpp): qualifiers vanish, built-in variables and block/warp primitives go to the
// emulator, float2 accesses check their alignment as the hardware does. Only what the emulated
// kernels use is here, so a kernel that needs more fails to compile instead of running wrongly.
#include <math.h>  // isinf, exp2f, fminf, ... in the global namespace, where device code finds them

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../simt.hpp"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__  // a const kernel parameter left in the parameter block: a plain const copy here
// Shared memory is thread_local storage: the emulator runs every fiber on one OS thread, so all the
// threads of a block (and the blocks, one after another) see one array. Dynamic shared memory
// (`extern __shared__ T name[];`) names an array the test defines (`thread_local` too) and hands
// to the launch, which fills it with NaN at each block's start; a static `__shared__ T x[n]` (as in
// device_util.cuh's block_reduce) is a function-local thread_local, not refilled between blocks.
#define __shared__ thread_local

inline const simt::Dim3& threadIdx = simt::thread_idx;
inline const simt::Dim3& blockIdx = simt::block_idx;
inline const simt::Dim3& blockDim = simt::block_dim;
inline const simt::Dim3& gridDim = simt::grid_dim;
inline constexpr int warpSize = 32;

// CUDA's integer and float min/max overloads (device code calls them unqualified).
#define LD_SIMT_MIN_MAX(T)                                            \
  inline constexpr T min(T a, T b) { return b < a ? b : a; }          \
  inline constexpr T max(T a, T b) { return a < b ? b : a; }
LD_SIMT_MIN_MAX(int)
LD_SIMT_MIN_MAX(unsigned)
LD_SIMT_MIN_MAX(long)
LD_SIMT_MIN_MAX(unsigned long)
LD_SIMT_MIN_MAX(long long)
LD_SIMT_MIN_MAX(unsigned long long)
#undef LD_SIMT_MIN_MAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// float2 is 8-byte aligned on the device, and a load or store through a misaligned float2* faults
// there; here every copy from or into memory checks the address (locals are always aligned). The
// check reports and carries on, so UBSan's own alignment check (a sanitizer build) stays out of it.
#define LD_SIMT_OWN_ALIGNMENT_CHECK __attribute__((no_sanitize("alignment")))
struct alignas(8) float2 {
  float x, y;
  float2() = default;
  constexpr float2(float x_, float y_) : x(x_), y(y_) {}
  LD_SIMT_OWN_ALIGNMENT_CHECK float2(const float2& o) : x(o.x), y(o.y) { check(&o); }
  LD_SIMT_OWN_ALIGNMENT_CHECK float2& operator=(const float2& o) {
    check(this);
    check(&o);
    x = o.x;
    y = o.y;
    return *this;
  }
  static void check(const float2* p) {
    if (reinterpret_cast<uintptr_t>(p) % 8 != 0) simt::error("misaligned float2 access at %p", static_cast<const void*>(p));
  }
};
inline float2 make_float2(float x, float y) { return float2(x, y); }

inline void __syncthreads() { simt::syncthreads(); }

// Launch shapes: dim3 and what device_util.cuh's LD_CUDA_LAUNCH becomes
// under LD_SIMT_EMULATION: LD_SIMT_LAUNCH(kernel, grid, block, smem, stream)(args...) runs kernel
// on the emulator with the arguments copied (as <<<>>> copies them), synchronously, with
// simt::set_shared's array as its dynamic shared memory. kernel may name a template whose
// arguments the call deduces (device_util.cuh's map_kernel).
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
#define LD_SIMT_LAUNCH(kernel, grid, block, smem, stream)                                              \
  (void)(stream), ::simt::LaunchConfig{ld_simt_grid(grid), unsigned(block), size_t(smem)} *          \
                      [&](auto... ld_simt_args) { return [=] { kernel(ld_simt_args...); }; }
inline simt::Dim3 ld_simt_grid(dim3 g) { return {g.x, g.y, g.z}; }

inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline uint32_t __umulhi(uint32_t a, uint32_t b) { return uint32_t((uint64_t(a) * b) >> 32); }

template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a shuffle moves at most 64 bits");
  if (width != warpSize) simt::error("__shfl_xor_sync: width %d is not emulated", width);
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = simt::shfl(simt::WarpOp::shfl_xor, mask, bits, lane_mask);
  std::memcpy(&var, &bits, sizeof(T));
  return var;
}
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a shuffle moves at most 64 bits");
  if (width != warpSize) simt::error("__shfl_sync: width %d is not emulated", width);
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = simt::shfl(simt::WarpOp::shfl_idx, mask, bits, src_lane);
  std::memcpy(&var, &bits, sizeof(T));
  return var;
}

// Atomics: fibers never run concurrently, so a plain update is atomic. The float2 form exists for
// global memory only (sm_90) and needs an 8-byte aligned address.
inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}
inline float2 atomicAdd(float2* p, float2 v) {
  if (reinterpret_cast<uintptr_t>(p) % 8 != 0 || simt::is_shared(p)) {
    simt::error("atomicAdd(float2*) at %p: needs an 8-byte aligned global address", static_cast<void*>(p));
    return v;
  }
  const float2 old = *p;
  p->x += v.x;
  p->y += v.y;
  return old;
}

// What host code (cuda_check.hpp, the launch sites) names; launches themselves go through simt::launch,
// and run at once, so stream order is program order.
struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t = nullptr) {
  std::memset(p, value, bytes);
  return cudaSuccess;
}
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel*, cudaFuncAttribute, int value) {
  return value >= 0 && size_t(value) <= simt::kMaxDynamicSharedBytes ? cudaSuccess : cudaErrorInvalidValue;
}
inline const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorInvalidValue"; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "invalid argument"; }
