// GemmArgs::bias on the CPU backend against a float64 product: C = alpha op(A) op(B) + beta C + bias
// on every row, for one product and a batch (strided C with padding), beta 0 (C's old values
// ignored, even NaN) and not, and k = 0 (the bias and beta C alone). The CUDA backend's epilogue is
// checked against this in tests/cuda/cuda_ops_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace ld {
namespace {

struct BiasCase {
  int64_t m, n, k, batch;
  float alpha, beta;
  bool trans_b;
};

void check(const BiasCase& c) {
  Generator gen(17 + uint64_t(c.m * c.n + c.k));
  const int64_t ldc = c.n + 2;  // padded rows: the bias must land in row j's first n values only
  std::vector<float> a = randn({c.batch, c.m, c.k}, &gen).to_vector<float>();
  std::vector<float> b = randn({c.batch, c.k, c.n}, &gen).to_vector<float>();  // read as [n, k] when trans_b
  std::vector<float> bias = randn({c.n}, &gen).to_vector<float>();
  std::vector<float> out = randn({c.batch, c.m, ldc}, &gen).to_vector<float>();
  if (c.beta == 0.0f) out[0] = std::numeric_limits<float>::quiet_NaN();  // beta 0 must not read C
  const std::vector<float> before = out;
  GemmArgs g;
  g.trans_b = c.trans_b, g.m = c.m, g.n = c.n, g.k = c.k, g.alpha = c.alpha, g.beta = c.beta;
  g.a = a.data(), g.lda = std::max<int64_t>(c.k, 1), g.b = b.data(), g.ldb = std::max<int64_t>(c.trans_b ? c.k : c.n, 1);
  g.c = out.data(), g.ldc = ldc, g.batch = c.batch;
  g.stride_a = c.m * c.k, g.stride_b = c.k * c.n, g.stride_c = c.m * ldc;
  g.bias = bias.data();
  backend_for(kCPU).gemm(g);
  for (int64_t bi = 0; bi < c.batch; ++bi)
    for (int64_t i = 0; i < c.m; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        const size_t at = size_t(bi * c.m * ldc + i * ldc + j);
        if (j >= c.n) {
          ASSERT_EQ(out[at], before[at]) << "padding written at row " << i << ", column " << j;
          continue;
        }
        double want = c.beta == 0.0f ? 0.0 : double(c.beta) * before[at];
        double product = 0.0;
        for (int64_t kk = 0; kk < c.k; ++kk) {
          const double bv = c.trans_b ? b[size_t(bi * c.k * c.n + j * c.k + kk)] : b[size_t(bi * c.k * c.n + kk * c.n + j)];
          product += double(a[size_t(bi * c.m * c.k + i * c.k + kk)]) * bv;
        }
        want += double(c.alpha) * product + bias[size_t(j)];
        ASSERT_NEAR(out[at], want, 1e-4 * (1.0 + std::abs(want)))
            << "batch " << bi << ", row " << i << ", column " << j << " (m=" << c.m << " n=" << c.n << " k=" << c.k
            << " beta=" << c.beta << ")";
      }
}

TEST(GemmBias, AddsTheBiasToEveryRowWithBetaAndAlpha) {
  for (const BiasCase& c : {BiasCase{37, 29, 53, 1, 1.0f, 0.0f, false}, BiasCase{64, 48, 96, 1, 0.5f, 1.0f, true},
                            BiasCase{1, 300, 70, 1, 1.0f, 0.0f, true}, BiasCase{20, 24, 32, 3, 1.0f, 0.5f, false},
                            BiasCase{5, 6, 0, 2, 1.0f, 0.5f, false}, BiasCase{5, 6, 0, 1, 1.0f, 0.0f, false}})
    check(c);
}

}  // namespace
}  // namespace ld
