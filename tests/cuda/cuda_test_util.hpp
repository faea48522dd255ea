#pragma once
// Shared by the CUDA tests: the skip rule (no device: every GPU test skips, saying why; never a
// fake pass), moving tensors between the backends, and elementwise comparison.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace ld::test {

inline constexpr Device kGPU{DeviceKind::cuda, 0};

// A test fixture whose tests skip when this machine has no usable CUDA device.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_unavailable_reason();
  }
  CpuBackend& cpu() { return cpu_backend(); }
  CudaBackend& gpu() { return cuda_backend(0); }
  Generator gen{1234};
};

inline Tensor to_gpu(const Tensor& t) { return t.contiguous().to(kGPU); }
inline Tensor to_cpu(const Tensor& t) { return t.to(kCPU); }

// |gpu - cpu| <= atol + rtol * |cpu| everywhere (NaN only where the CPU has NaN, inf where inf);
// reports the worst element.
inline void expect_close(const Tensor& gpu_result, const Tensor& cpu_result, double rtol, double atol,
                         const std::string& what) {
  ASSERT_EQ(gpu_result.shape(), cpu_result.shape()) << what;
  const std::vector<float> g = gpu_result.to(kCPU).to(DType::f32).contiguous().to_vector<float>();
  const std::vector<float> c = cpu_result.to(DType::f32).contiguous().to_vector<float>();
  size_t worst = 0, bad = 0;
  double worst_excess = 0.0;
  for (size_t i = 0; i < c.size(); ++i) {
    const double a = g[i], b = c[i];
    if (std::isnan(b) || std::isinf(b)) {
      const bool same = std::isnan(b) ? std::isnan(a) : a == b;
      if (!same) ++bad, worst = i, worst_excess = INFINITY;
      continue;
    }
    const double excess = std::abs(a - b) - (atol + rtol * std::abs(b));
    if (!(excess <= 0.0)) {
      ++bad;
      if (!(excess <= worst_excess)) worst_excess = excess, worst = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << c.size() << " elements differ; worst at " << worst
                     << ": cuda " << (c.empty() ? 0.0f : g[worst]) << " vs cpu " << (c.empty() ? 0.0f : c[worst]);
}

// Exact equality of two tensors' bytes (as f32 / i64 values).
template <typename T>
void expect_equal(const Tensor& gpu_result, const Tensor& cpu_result, const std::string& what) {
  const std::vector<T> g = gpu_result.to(kCPU).template to_vector<T>();
  const std::vector<T> c = cpu_result.template to_vector<T>();
  ASSERT_EQ(g.size(), c.size()) << what;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < c.size(); ++i)
    if (!(g[i] == c[i]) && !(std::isnan(double(g[i])) && std::isnan(double(c[i])))) {
      if (bad++ == 0) first = i;
    }
  EXPECT_EQ(bad, 0u) << what << ": first difference at " << first << ": cuda " << (bad ? g[first] : T{}) << " vs cpu "
                     << (bad ? c[first] : T{});
}

}  // namespace ld::test
