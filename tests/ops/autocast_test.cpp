// Autocast (ops/autocast.hpp): bf16/fp16 matrix products against float64 products of the rounded
// operands, on the backend's gemm directly (every transpose, alpha, beta, batches) and through
// matmul/linear with their gradients; f32 outside any scope; scopes nest and restore.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/gemm_half.hpp"
#include "core/dtype.hpp"
#include "core/rng.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld {
namespace {

using ops::AutocastScope;
using ops::ComputePrecision;

double round_to(ComputePrecision p, double x) {
  const float f = float(x);
  if (p == ComputePrecision::bf16) return bf16_to_f32(f32_to_bf16(f));
  if (p == ComputePrecision::fp16) return f16_to_f32(f32_to_f16(f));
  return f;
}

std::vector<float> random_values(int64_t n, uint64_t seed) {
  Generator gen(seed);
  return randn({n}, &gen).to_vector<float>();
}

// C[b] = alpha op(A[b]) op(B[b]) + beta C0[b] in float64 on rounded A, B (an operand is shared by all batches
// when its batch stride is 0); fp16 then rounds the result as a real fp16 GEMM writes it.
std::vector<double> reference_gemm(const GemmArgs& g, const std::vector<float>& a, const std::vector<float>& b,
                                   const std::vector<float>& c0) {
  std::vector<double> c(c0.begin(), c0.end());  // padding stays as it was
  for (int64_t bi = 0; bi < g.batch; ++bi)
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < g.k; ++p) {
          const double x = a[size_t(bi * g.stride_a + (g.trans_a ? p * g.lda + i : i * g.lda + p))];
          const double y = b[size_t(bi * g.stride_b + (g.trans_b ? j * g.ldb + p : p * g.ldb + j))];
          acc += round_to(g.precision, x) * round_to(g.precision, y);
        }
        const size_t at = size_t(bi * g.stride_c + i * g.ldc + j);
        const double v = g.alpha * acc + (g.beta != 0.0f ? g.beta * double(c0[at]) : 0.0);
        c[at] = g.precision == ComputePrecision::fp16 ? round_to(g.precision, v) : v;
      }
  return c;
}

enum class Shared { none, a, b };  // an operand shared by all batch items (batch stride 0)

// A batch of m x k by k x n products with leading dimensions padded by pad_a, pad_b, pad_c, A or B
// shared by every item when asked, and random operands (a from seed, b from seed + 1).
struct StridedProduct {
  GemmArgs g;
  std::vector<float> a, b;
  StridedProduct(ComputePrecision p, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                 std::array<int64_t, 3> pad, int64_t batch, Shared shared, uint64_t seed) {
    g.precision = p;
    g.trans_a = trans_a, g.trans_b = trans_b;
    g.m = m, g.n = n, g.k = k;
    g.lda = (trans_a ? m : k) + pad[0], g.ldb = (trans_b ? k : n) + pad[1], g.ldc = n + pad[2];
    g.batch = batch;
    const int64_t a_size = (trans_a ? k : m) * g.lda, b_size = (trans_b ? n : k) * g.ldb;
    g.stride_a = shared == Shared::a ? 0 : a_size;
    g.stride_b = shared == Shared::b ? 0 : b_size;
    g.stride_c = m * g.ldc;
    a = random_values(shared == Shared::a ? a_size : batch * a_size, seed);
    b = random_values(shared == Shared::b ? b_size : batch * b_size, seed + 1);
    g.a = a.data(), g.b = b.data();
  }
};

// One product of m x k by k x n with the given layout, checked against reference_gemm.
void check_gemm(ComputePrecision precision, bool trans_a, bool trans_b, float alpha, float beta, int64_t batch,
                Shared shared = Shared::none) {
  StridedProduct product(precision, trans_a, trans_b, 9, 11, 70, {3, 2, 1}, batch, shared, 1);
  GemmArgs& g = product.g;
  const std::vector<float>& a = product.a;
  const std::vector<float>& b = product.b;
  g.alpha = alpha, g.beta = beta;
  const std::vector<float> c0 = random_values(batch * g.stride_c, 3);
  std::vector<float> c = c0;
  g.c = c.data();
  backend_for(kCPU).gemm(g);
  const std::vector<double> want = reference_gemm(g, a, b, c0);
  double worst = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    // f32 accumulation over k = 70 terms of size ~1; fp16 output: one fp16 ulp (the f32 sum may round
    // to the other side of a tie than the float64 one).
    const double fp16_ulp = precision == ComputePrecision::fp16 ? std::abs(want[i]) / 1024 : 0.0;
    const double tol = 2e-5 * (1 + std::abs(want[i])) + fp16_ulp;
    worst = std::max(worst, std::abs(c[i] - want[i]) / tol);
  }
  EXPECT_LE(worst, 1.0) << "precision " << ops::compute_precision_name(precision) << " trans_a " << trans_a
                        << " trans_b " << trans_b << " alpha " << alpha << " beta " << beta << " batch " << batch
                        << " shared " << int(shared);
}

void check_all_layouts(ComputePrecision p) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f}) check_gemm(p, ta, tb, 1.0f, beta, 1);
  check_gemm(p, false, true, 0.5f, 0.0f, 1);  // alpha
  check_gemm(p, true, false, 1.0f, 0.5f, 1);  // beta other than 0 and 1
  check_gemm(p, false, false, 1.0f, 0.0f, 3);
  check_gemm(p, true, true, 0.25f, 1.0f, 3, Shared::b);
  check_gemm(p, false, true, 1.0f, 0.0f, 3, Shared::a);
}

TEST(Autocast, Bf16GemmsMatchFloat64ProductsOfRoundedOperands) {
  check_all_layouts(ComputePrecision::bf16);  // oneDNN's bf16 kernels where the CPU has them
  cpu::ForceEmulatedBf16 emulated;            // what a CPU without them runs
  check_all_layouts(ComputePrecision::bf16);
}

TEST(Autocast, Fp16GemmsMatchFloat64ProductsOfRoundedOperands) { check_all_layouts(ComputePrecision::fp16); }

// The same product with operands given already rounded (GemmArgs::a_half / b_half): bit for bit what
// the f32 operands give, packed (read in place) or padded (copied), batched or shared, one or both.
void check_half_operands(ComputePrecision p, bool trans_a, bool trans_b, bool padded, int64_t batch, Shared shared) {
  const int64_t pad_a = padded ? 3 : 0, pad_b = padded ? 5 : 0;
  StridedProduct product(p, trans_a, trans_b, 13, 10, 37, {pad_a, pad_b, 0}, batch, shared, 4);
  const GemmArgs& g = product.g;
  const std::vector<float>& a = product.a;
  const std::vector<float>& b = product.b;
  auto to_half = [&](const std::vector<float>& x) {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = p == ComputePrecision::bf16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
    return h;
  };
  const std::vector<uint16_t> a16 = to_half(a), b16 = to_half(b);
  std::vector<float> want(size_t(batch * g.stride_c)), got_a(want.size()), got_both(want.size());
  GemmArgs full = g;
  full.c = want.data();
  backend_for(kCPU).gemm(full);
  GemmArgs only_a = full;
  only_a.a = nullptr, only_a.a_half = a16.data(), only_a.c = got_a.data();
  backend_for(kCPU).gemm(only_a);
  GemmArgs both = only_a;
  both.b = nullptr, both.b_half = b16.data(), both.c = got_both.data();
  backend_for(kCPU).gemm(both);
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got_a[i], want[i]) << "a in 16 bits, element " << i;
    ASSERT_EQ(got_both[i], want[i]) << "a and b in 16 bits, element " << i;
  }
}

TEST(Autocast, OperandsRoundedBeforehandGiveTheSameProduct) {
  for (ComputePrecision p : {ComputePrecision::bf16, ComputePrecision::fp16})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (bool padded : {false, true}) {
          SCOPED_TRACE(testing::Message() << ops::compute_precision_name(p) << " ta " << ta << " tb " << tb
                                          << " padded " << padded);
          check_half_operands(p, ta, tb, padded, 1, Shared::none);
          check_half_operands(p, ta, tb, padded, 3, Shared::none);
          check_half_operands(p, ta, tb, padded, 3, Shared::b);
        }
  // Where oneDNN has no bf16 kernel the operands are widened into f32 buffers instead.
  cpu::ForceEmulatedBf16 emulated;
  check_half_operands(ComputePrecision::bf16, false, true, false, 1, Shared::none);
  check_half_operands(ComputePrecision::bf16, true, false, true, 3, Shared::a);
}

TEST(Autocast, RoundingIsVisibleAndFp16OverflowsToInfinity) {
  // 1 + 2^-10 is not a bf16 value (8 bits): the bf16 product sees 1; f32 sees it exactly.
  const float x = 1.0f + 1.0f / 1024;
  const Tensor a = full({1, 1}, x), b = full({1, 1}, 1.0f);
  EXPECT_EQ(ops::matmul(a, b).item(), double(x));
  {
    AutocastScope bf16(ComputePrecision::bf16);
    EXPECT_EQ(ops::matmul(a, b).item(), 1.0);
  }
  AutocastScope fp16(ComputePrecision::fp16);
  EXPECT_EQ(ops::matmul(a, b).item(), double(x));  // fp16 has 10 mantissa bits
  // 65520 rounds to inf in fp16 (the largest finite value is 65504), as an operand or as an output.
  EXPECT_TRUE(std::isinf(ops::matmul(full({1, 1}, 65520.0f), full({1, 1}, 1e-3f)).item()));
  EXPECT_TRUE(std::isinf(ops::matmul(full({1, 1}, 300.0f), full({1, 1}, 300.0f)).item()));
}

TEST(Autocast, ScopesNestAndRestore) {
  EXPECT_EQ(ops::autocast_precision(), ComputePrecision::f32);
  {
    AutocastScope outer(ComputePrecision::bf16);
    EXPECT_EQ(ops::autocast_precision(), ComputePrecision::bf16);
    {
      AutocastScope inner(ComputePrecision::fp16);
      EXPECT_EQ(ops::autocast_precision(), ComputePrecision::fp16);
    }
    EXPECT_EQ(ops::autocast_precision(), ComputePrecision::bf16);
  }
  EXPECT_EQ(ops::autocast_precision(), ComputePrecision::f32);
  EXPECT_EQ(ops::compute_precision_from_name("bf16"), ComputePrecision::bf16);
  test::expect_mentions(test::error_message([] { ops::compute_precision_from_name("fp8"); }),
                        {"fp8", "fp32, bf16, fp16"});
}

TEST(Autocast, F32ProductsAreUnchangedOutsideAnyScope) {
  Generator gen(7);
  const Tensor a = randn({33, 40}, &gen), b = randn({40, 17}, &gen);
  const Tensor before = ops::matmul(a, b);
  {
    AutocastScope bf16(ComputePrecision::bf16);
    EXPECT_GT(test::max_abs_diff(ops::matmul(a, b), before), 1e-3);  // it did round
  }
  EXPECT_EQ(test::max_abs_diff(ops::matmul(a, b), before), 0.0);
}

// float64 (rows x inner) @ (inner x cols) of rounded values; element (i, j) of X is x(i, j).
template <typename X, typename Y>
std::vector<double> rounded_product(ComputePrecision p, int64_t rows, int64_t inner, int64_t cols, X x, Y y) {
  std::vector<double> out(size_t(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t q = 0; q < inner; ++q) out[size_t(i * cols + j)] += round_to(p, x(i, q)) * round_to(p, y(q, j));
  return out;
}

void expect_close(const Tensor& got, const std::vector<double>& want, const char* what) {
  const std::vector<float> g = got.to_vector<float>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], 2e-5 * (1 + std::abs(want[i]))) << what << " " << i;
}

// Linear y = x W^T + b under bf16, loss = sum(y * G): dX = G W, dW = G^T X on bf16-rounded values,
// whether the backward runs inside the forward's scope or after it (it computes in the forward's
// precision, as in PyTorch).
void check_linear_gradients(bool backward_inside_scope) {
  Generator gen(11);
  const int64_t n = 6, in = 40, out = 5;
  Tensor x = randn({n, in}, &gen).set_requires_grad(), w = randn({out, in}, &gen).set_requires_grad();
  Tensor bias = randn({out}, &gen).set_requires_grad();
  const Tensor g = randn({n, out}, &gen);
  const auto xv = x.to_vector<float>(), wv = w.to_vector<float>(), gv = g.to_vector<float>();
  const auto bv = bias.to_vector<float>();
  const ComputePrecision p = ComputePrecision::bf16;
  Tensor loss;
  {
    AutocastScope autocast(p);
    const Tensor y = ops::linear(x, w, bias);
    std::vector<double> want =
        rounded_product(p, n, in, out, [&](int64_t i, int64_t q) { return xv[size_t(i * in + q)]; },
                        [&](int64_t q, int64_t j) { return wv[size_t(j * in + q)]; });
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < out; ++j) want[size_t(i * out + j)] += bv[size_t(j)];  // the bias is not rounded
    expect_close(y, want, "y");
    loss = ops::sum(ops::mul(y, g));
    if (backward_inside_scope) loss.backward();
  }
  if (!backward_inside_scope) loss.backward();
  expect_close(x.grad(), rounded_product(p, n, out, in, [&](int64_t i, int64_t q) { return gv[size_t(i * out + q)]; },
                                         [&](int64_t q, int64_t j) { return wv[size_t(q * in + j)]; }), "dX");
  expect_close(w.grad(), rounded_product(p, out, n, in, [&](int64_t i, int64_t q) { return gv[size_t(q * out + i)]; },
                                         [&](int64_t q, int64_t j) { return xv[size_t(q * in + j)]; }), "dW");
}

TEST(Autocast, LinearGradientsUseRoundedOperands) { check_linear_gradients(/*backward_inside_scope=*/true); }

TEST(Autocast, LinearBackwardComputesInTheForwardsPrecision) {
  check_linear_gradients(/*backward_inside_scope=*/false);
}

// Batched matmul a [2, m, k] @ b [k, n] under bf16: da = G b^T, db = sum over the batch of a^T G;
// the backward in the forward's precision wherever it runs.
void check_matmul_gradients(bool backward_inside_scope) {
  Generator gen(12);
  const int64_t m = 4, k = 36, n = 3;
  Tensor a = randn({2, m, k}, &gen).set_requires_grad(), b = randn({k, n}, &gen).set_requires_grad();
  const Tensor g = randn({2, m, n}, &gen);
  const auto av = a.to_vector<float>(), bv = b.to_vector<float>(), gv = g.to_vector<float>();
  const ComputePrecision p = ComputePrecision::bf16;
  Tensor loss;
  {
    AutocastScope autocast(p);
    loss = ops::sum(ops::mul(ops::matmul(a, b), g));
    if (backward_inside_scope) loss.backward();
  }
  if (!backward_inside_scope) loss.backward();
  // da, both batch items stacked as 2m rows
  expect_close(a.grad(), rounded_product(p, 2 * m, n, k, [&](int64_t i, int64_t q) { return gv[size_t(i * n + q)]; },
                                         [&](int64_t q, int64_t j) { return bv[size_t(j * n + q)]; }), "da");
  // db = A^T G with A viewed as [2m, k]: the broadcast batch sums into one product over 2m rows
  // (each item's product is rounded alone, then summed in f32: the same up to f32 rounding)
  expect_close(b.grad(), rounded_product(p, k, 2 * m, n, [&](int64_t i, int64_t q) { return av[size_t(q * k + i)]; },
                                         [&](int64_t q, int64_t j) { return gv[size_t(q * n + j)]; }), "db");
}

TEST(Autocast, MatmulGradientsUseRoundedOperands) { check_matmul_gradients(/*backward_inside_scope=*/true); }

TEST(Autocast, MatmulBackwardComputesInTheForwardsPrecision) {
  check_matmul_gradients(/*backward_inside_scope=*/false);
}

}  // namespace
}  // namespace ld
