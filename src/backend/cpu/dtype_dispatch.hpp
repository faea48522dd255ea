#pragma once
// Element types as the CPU kernels see them: bf16 and f16 are wrapped 16-bit patterns converted
// through float; integers convert through int64 so large ids survive.
#include <cstdint>

#include "core/dtype.hpp"
#include "core/error.hpp"

namespace ld::cpu {

struct BF16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

template <typename T>
inline constexpr bool kIsFloatLike = std::is_same_v<T, float> || std::is_same_v<T, BF16> || std::is_same_v<T, F16>;

template <typename T>
inline float to_float(T v) {
  if constexpr (std::is_same_v<T, BF16>)
    return bf16_to_f32(v.bits);
  else if constexpr (std::is_same_v<T, F16>)
    return f16_to_f32(v.bits);
  else
    return float(v);
}

template <typename D, typename S>
inline D convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, BF16>) {
    return BF16{f32_to_bf16(to_float(v))};
  } else if constexpr (std::is_same_v<D, F16>) {
    return F16{f32_to_f16(to_float(v))};
  } else if constexpr (kIsFloatLike<S>) {
    return D(to_float(v));
  } else {
    return D(v);
  }
}

// Calls f(T{}) with T the C++ element type of dtype.
template <typename F>
decltype(auto) dispatch_dtype(DType dtype, F&& f) {
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

}  // namespace ld::cpu
