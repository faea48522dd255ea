#include <cstring>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/dtype_dispatch.hpp"
#include "backend/cpu/half_rows.hpp"
#include "backend/cpu/strided_loop.hpp"

namespace ld {

void CpuBackend::copy_strided(int ndim, const int64_t* shape, DType src_dtype, const void* src,
                              const int64_t* src_strides, DType dst_dtype, void* dst, const int64_t* dst_strides) {
  cpu::dispatch_dtype(src_dtype, [&](auto s_tag) {
    using S = decltype(s_tag);
    cpu::dispatch_dtype(dst_dtype, [&](auto d_tag) {
      using D = decltype(d_tag);
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      cpu::for_each_row<2>(ndim, shape, {dst_strides, src_strides},
                           [&](const std::array<int64_t, 2>& base, int64_t len, const std::array<int64_t, 2>& inc) {
                             D* dp = d + base[0];
                             const S* sp = s + base[1];
                             if constexpr (std::is_same_v<S, D>) {
                               if (inc[0] == 1 && inc[1] == 1) {
                                 std::memcpy(dp, sp, size_t(len) * sizeof(D));
                                 return;
                               }
                             }
                             if constexpr (std::is_same_v<S, float> && std::is_same_v<D, cpu::BF16>) {
                               if (inc[0] == 1 && inc[1] == 1) {  // an autocast operand rounded once
                                 cpu::to_bf16_row(sp, len, &dp->bits);
                                 return;
                               }
                             }
                             for (int64_t i = 0; i < len; ++i) dp[i * inc[0]] = cpu::convert<D>(sp[i * inc[1]]);
                           });
    });
  });
}

void CpuBackend::fill(DType dtype, void* dst, int64_t n, double value) {
  cpu::dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T v;
    if constexpr (cpu::kIsFloatLike<T>)
      v = cpu::convert<T>(float(value));
    else
      v = T(value);
    T* d = static_cast<T*>(dst);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) d[i] = v;
  });
}

}  // namespace ld
