// copy_strided (any layout, any dtype pair), fill, and the Philox kernels random_fill and dropout,
// with the CPU backend's conversions and random streams (copy.cpp, random.cpp).
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace {

using cuda::launch_map;

struct BF16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

template <typename T>
__device__ float as_float(T v) {
  if constexpr (std::is_same_v<T, BF16>)
    return cuda::bf16_bits_to_f32(v.bits);
  else if constexpr (std::is_same_v<T, F16>)
    return cuda::f16_bits_to_f32(v.bits);
  else
    return float(v);
}

// The host's cpu::convert: half types through float, floats to integers by truncation,
// integers to integers directly (so large ids survive).
template <typename D, typename S>
__device__ D convert(S v) {
  constexpr bool kSrcFloat = std::is_same_v<S, float> || std::is_same_v<S, BF16> || std::is_same_v<S, F16>;
  if constexpr (std::is_same_v<D, S>)
    return v;
  else if constexpr (std::is_same_v<D, BF16>)
    return BF16{cuda::f32_to_bf16_bits(as_float(v))};
  else if constexpr (std::is_same_v<D, F16>)
    return F16{cuda::f32_to_f16_bits(as_float(v))};
  else if constexpr (kSrcFloat)
    return D(as_float(v));
  else
    return D(v);
}

template <typename F>
void dispatch_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(BF16{});
    case DType::f16: return f(F16{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
    case DType::i8: return f(int8_t{});
    case DType::u8: return f(uint8_t{});
  }
  LD_ASSERT(false, "unknown dtype");
}

// (Extended __device__ lambdas may not sit inside the generic lambdas of dispatch_dtype, hence
// these named templates.)
template <typename S, typename D>
void launch_copy(cudaStream_t s, const cuda::StridedSpace<2>& space, const void* src, void* dst) {
  const S* sp = static_cast<const S*>(src);
  D* dp = static_cast<D*>(dst);
  launch_map(s, space.numel, [=] __device__(int64_t i) {
    int64_t off[2];
    space.offsets(i, off);
    dp[off[0]] = convert<D>(sp[off[1]]);
  });
}

template <typename T>
void launch_fill(cudaStream_t s, void* dst, int64_t n, double value) {
  T v;
  if constexpr (std::is_same_v<T, BF16>)
    v = BF16{f32_to_bf16(float(value))};
  else if constexpr (std::is_same_v<T, F16>)
    v = F16{f32_to_f16(float(value))};
  else if constexpr (std::is_same_v<T, float>)
    v = float(value);
  else
    v = T(value);
  T* d = static_cast<T*>(dst);
  launch_map(s, n, [=] __device__(int64_t i) { d[i] = v; });
}

}  // namespace

void CudaBackend::copy_strided(int ndim, const int64_t* shape, DType src_dtype, const void* src,
                               const int64_t* src_strides, DType dst_dtype, void* dst, const int64_t* dst_strides) {
  const int64_t* strides[2] = {dst_strides, src_strides};
  const cuda::StridedSpace<2> space = cuda::make_space<2>(ndim, shape, strides);
  cudaStream_t s = stream();
  dispatch_dtype(src_dtype, [&](auto s_tag) {
    dispatch_dtype(dst_dtype, [&](auto d_tag) {
      launch_copy<decltype(s_tag), decltype(d_tag)>(s, space, src, dst);
    });
  });
}

void CudaBackend::fill(DType dtype, void* dst, int64_t n, double value) {
  cudaStream_t s = stream();
  dispatch_dtype(dtype, [&](auto tag) { launch_fill<decltype(tag)>(s, dst, n, value); });
}

// One thread per Philox block of 4 values, as the CPU loop.
void CudaBackend::random_fill(RandomKind kind, float* dst, int64_t n, uint64_t seed, uint64_t offset, float a,
                              float b) {
  const int64_t blocks = (n + 3) / 4;
  const bool uniform = kind == RandomKind::uniform;
  launch_map(stream(), blocks, [=] __device__(int64_t blk) {
    const cuda::Philox4 r = cuda::philox4x32(seed, offset + uint64_t(blk));
    float out[4];
    if (uniform) {
      for (int j = 0; j < 4; ++j) out[j] = a + (b - a) * cuda::unit_float(r.v[j]);
    } else {
      for (int j = 0; j < 4; j += 2) {  // Box-Muller, (0, 1] for the log argument
        const float u1 = 1.0f - cuda::unit_float(r.v[j]), u2 = cuda::unit_float(r.v[j + 1]);
        const float radius = sqrtf(-2.0f * logf(u1)), angle = 6.28318530717958647692f * u2;
        out[j] = a + b * radius * cosf(angle);
        out[j + 1] = a + b * radius * sinf(angle);
      }
    }
    const int64_t base = blk * 4;
    for (int j = 0; j < 4 && base + j < n; ++j) dst[base + j] = out[j];
  });
}

void CudaBackend::dropout(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;  // on the host, as the CPU computes it
  const int64_t blocks = (n + 3) / 4;
  launch_map(stream(), blocks, [=] __device__(int64_t blk) {
    const cuda::Philox4 r = cuda::philox4x32(seed, offset + uint64_t(blk));
    const int64_t base = blk * 4;
    for (int j = 0; j < 4 && base + j < n; ++j)
      y[base + j] = cuda::unit_float(r.v[j]) < p ? 0.0f : __fmul_rn(x[base + j], keep_scale);
  });
}

}  // namespace ld
