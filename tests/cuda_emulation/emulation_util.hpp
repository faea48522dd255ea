#pragma once
// Shared by the tests that run a src/backend/cuda/*.cu file's host code (CudaBackend members, the
// shim's backend/cuda/cuda_backend.hpp) on the emulator and compare with the CPU backend: inputs
// from a fixed generator, buffers on both sides, and the elementwise comparison of
// tests/cuda/cuda_test_util.hpp (|got - want| <= atol + rtol * |want|; NaN and inf only where the
// CPU has them).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../simt.hpp"

namespace ld::emulation_test {

// For the length of one emulated check: the emulator must report no fault (misaligned access,
// cp.async left in flight, ...), and the check's wall time is printed.
struct EmulatedRun {
  const char* name;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int errors_before = simt::error_count();
  ~EmulatedRun() {
    EXPECT_EQ(simt::error_count(), errors_before) << name << ": the emulator reported faults (printed above)";
    std::printf("[ emulated ] %s: %.2f s\n", name,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
};

// N(0, 1) from a fixed engine (Box-Muller on mt19937_64, identical on every platform).
struct Normal {
  std::mt19937_64 engine{1234};
  float operator()() {
    const double u1 = (double(engine() >> 11) + 1.0) / 9007199254740993.0, u2 = double(engine() >> 11) / 9007199254740992.0;
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

// A device buffer (guard page after it, NaN until written) holding a copy of host.
template <typename T>
struct Mirror {
  std::vector<T> host;
  simt::DeviceBuffer<T> device;
  explicit Mirror(std::vector<T> h) : host(std::move(h)), device(host.empty() ? 1 : host.size()) {
    if (!host.empty()) std::memcpy(device.data(), host.data(), host.size() * sizeof(T));
  }
};

inline void expect_close(const float* got, const float* want, size_t n, double rtol, double atol,
                         const std::string& what) {
  size_t bad = 0, worst = 0;
  double worst_excess = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double a = got[i], b = want[i];
    if (std::isnan(b) || std::isinf(b)) {
      if (!(std::isnan(b) ? std::isnan(a) : a == b)) ++bad, worst = i, worst_excess = INFINITY;
      continue;
    }
    const double excess = std::abs(a - b) - (atol + rtol * std::abs(b));
    if (!(excess <= 0.0)) {
      ++bad;
      if (!(excess <= worst_excess)) worst_excess = excess, worst = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << n << " elements differ; worst at " << worst << ": emulated "
                     << (n ? got[worst] : 0.0f) << " vs cpu " << (n ? want[worst] : 0.0f);
}
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol, double atol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  expect_close(got.data(), want.data(), want.size(), rtol, atol, what);
}

inline std::vector<float> to_vector(const float* p, size_t n) { return std::vector<float>(p, p + n); }

}  // namespace ld::emulation_test
