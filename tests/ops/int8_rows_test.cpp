// cpu::quantize_rows_int8 and cpu::int8_rows_gemm against float64: every level within the stated
// error of its weight, the error bound tight (at most half a step), zero and non-finite rows as
// documented, bf16 rows as their f32 values; the product for 1..8 rows of X with row and column tails, to f32 rounding.
#include "backend/cpu/int8_rows.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/dtype.hpp"

namespace ld::cpu {
namespace {

std::vector<float> normal(size_t n, float std, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, std);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Int8Rows, QuantizedRowsAreWithinTheirStatedError) {
  const int64_t n = 29, k = 83;
  std::vector<float> w = normal(size_t(n * k), 0.5f, 1);
  for (int64_t i = 0; i < k; ++i) w[size_t(3 * k + i)] = 0.0f;                      // a zero row
  w[size_t(5 * k + 7)] = std::numeric_limits<float>::quiet_NaN();                     // NaN
  w[size_t(6 * k + 80)] = -std::numeric_limits<float>::infinity();                    // inf in the tail
  for (int64_t i = 0; i < k; ++i) w[size_t(7 * k + i)] *= 1e-30f;                     // tiny
  std::vector<int8_t> q(size_t(n * k), 99);
  std::vector<float> scale(static_cast<size_t>(n)), max_abs(static_cast<size_t>(n)), err(static_cast<size_t>(n));
  quantize_rows_int8(n, k, w.data(), k, q.data(), k, scale.data(), max_abs.data(), err.data());
  for (int64_t j = 0; j < n; ++j) {
    SCOPED_TRACE("row " + std::to_string(j));
    const float* row = w.data() + j * k;
    if (j == 5 || j == 6) {
      EXPECT_EQ(scale[size_t(j)], 0.0f);
      EXPECT_EQ(err[size_t(j)], std::numeric_limits<float>::infinity());
      EXPECT_EQ(max_abs[size_t(j)], std::numeric_limits<float>::infinity());
      for (int64_t i = 0; i < k; ++i) EXPECT_EQ(q[size_t(j * k + i)], 0);
      continue;
    }
    double m = 0.0, worst = 0.0;
    for (int64_t i = 0; i < k; ++i) m = std::max(m, std::fabs(double(row[i])));
    EXPECT_EQ(max_abs[size_t(j)], float(m));
    EXPECT_EQ(scale[size_t(j)], float(m) / 127.0f);
    for (int64_t i = 0; i < k; ++i) {
      const int level = q[size_t(j * k + i)];
      EXPECT_LE(std::abs(level), 127);
      worst = std::max(worst, std::fabs(double(row[i]) - double(scale[size_t(j)]) * level));
    }
    EXPECT_GE(double(err[size_t(j)]), worst);                                  // an upper bound
    EXPECT_LE(double(err[size_t(j)]), 0.5 * double(scale[size_t(j)]) * 1.0001);  // and a tight one
    if (j == 3) {
      EXPECT_EQ(err[size_t(j)], 0.0f);
    }
  }
}

TEST(Int8Rows, Bf16RowsQuantiseAsTheirF32Values) {
  const int64_t n = 13, k = 45;
  std::vector<float> w = normal(size_t(n * k), 0.3f, 3);
  std::vector<uint16_t> h;
  for (float& v : w) h.push_back(f32_to_bf16(v)), v = bf16_to_f32(h.back());
  std::vector<int8_t> qf(size_t(n * k)), qh(size_t(n * k));
  std::vector<float> a(size_t(3 * n)), b(size_t(3 * n));
  quantize_rows_int8(n, k, w.data(), k, qf.data(), k, a.data(), a.data() + n, a.data() + 2 * n);
  quantize_rows_int8(n, k, h.data(), k, qh.data(), k, b.data(), b.data() + n, b.data() + 2 * n);
  EXPECT_EQ(qf, qh);
  EXPECT_EQ(a, b);
}

TEST(Int8Rows, ProductMatchesFloat64) {
  const int64_t n = 37, k = 77;  // 37: blocks of 8, 4 and 2 rows of Q leave tails; 77: a masked tail
  std::vector<float> w = normal(size_t(n * k), 1.0f, 2);
  std::vector<int8_t> q(size_t(n * k));
  std::vector<float> scale(static_cast<size_t>(n)), max_abs(static_cast<size_t>(n)), err(static_cast<size_t>(n));
  quantize_rows_int8(n, k, w.data(), k, q.data(), k, scale.data(), max_abs.data(), err.data());
  for (int64_t m = 1; m <= kInt8RowsMaxM; ++m) {
    SCOPED_TRACE("m " + std::to_string(m));
    const std::vector<float> x = normal(size_t(m * (k + 3)), 1.0f, 10 + uint32_t(m));  // ldx = k + 3
    std::vector<float> y(size_t(m * (n + 5)), -1.0f);                                  // ldy = n + 5
    int8_rows_gemm(m, n, k, x.data(), k + 3, q.data(), k, scale.data(), y.data(), n + 5);
    for (int64_t b = 0; b < m; ++b)
      for (int64_t j = 0; j < n; ++j) {
        double want = 0.0, size = 0.0;
        for (int64_t i = 0; i < k; ++i) {
          const double t = double(x[size_t(b * (k + 3) + i)]) * double(scale[size_t(j)]) * q[size_t(j * k + i)];
          want += t, size += std::fabs(t);
        }
        EXPECT_NEAR(y[size_t(b * (n + 5) + j)], want, 1e-6 * size) << "row " << b << " col " << j;
      }
    for (int64_t b = 0; b < m; ++b) EXPECT_EQ(y[size_t(b * (n + 5) + n)], -1.0f);  // past n: untouched
  }
}

}  // namespace
}  // namespace ld::cpu
