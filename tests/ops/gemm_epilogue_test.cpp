// GemmArgs::epilogue and c_half on the CPU backend: the GELU (tanh) epilogue keeps the pre-activation
// in aux and writes its GELU, the DGELU epilogue multiplies the product by the GELU's derivative at
// aux, and a 16-bit C holds the rounded result. Checked against float64 formulas, and bit for bit
// against the separate kernels (gemm, then unary / unary_backward, then a cast) that the unfused ops
// run, which is what lets a fused op promise the unfused op's numbers. The CUDA backend is checked
// against this in tests/cuda/cuda_ops_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/backend.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace ld {
namespace {

double gelu_tanh(double x) {
  const double u = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
  return 0.5 * x * (1.0 + std::tanh(u));
}

double gelu_tanh_derivative(double x) {
  const double t = std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * std::sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * x * x);
}

struct Product {
  int64_t m = 23, n = 40, k = 37;
  std::vector<float> a, b, bias, aux;
  explicit Product(uint64_t seed) {
    Generator gen(seed);
    a = randn({m, k}, &gen).to_vector<float>();
    b = randn({n, k}, &gen).to_vector<float>();  // read transposed: x W^T, a Linear's layout
    bias = randn({n}, &gen).to_vector<float>();
    aux = randn({m, n}, &gen).to_vector<float>();
  }
  GemmArgs args(ComputePrecision p) const {
    GemmArgs g;
    g.trans_b = true, g.m = m, g.n = n, g.k = k, g.precision = p;
    g.a = a.data(), g.lda = k, g.b = b.data(), g.ldb = k, g.ldc = n;
    return g;
  }
  double dot(int64_t i, int64_t j) const {  // float64 product of the f32 operands
    double s = 0;
    for (int64_t q = 0; q < k; ++q) s += double(a[size_t(i * k + q)]) * double(b[size_t(j * k + q)]);
    return s;
  }
};

TEST(GemmEpilogue, GeluKeepsThePreActivationAndMatchesTheSeparateKernels) {
  const Product p(1);
  Backend& cpu = backend_for(kCPU);
  std::vector<float> pre(size_t(p.m * p.n)), out(pre.size()), plain(pre.size()), gelu(pre.size());
  GemmArgs g = p.args(ComputePrecision::f32);
  g.bias = p.bias.data(), g.epilogue = GemmEpilogue::gelu_tanh, g.aux = pre.data(), g.c = out.data();
  cpu.gemm(g);
  GemmArgs separate = p.args(ComputePrecision::f32);
  separate.bias = p.bias.data(), separate.c = plain.data();
  cpu.gemm(separate);
  cpu.unary(UnaryOp::gelu_tanh, int64_t(plain.size()), plain.data(), gelu.data());
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      const size_t at = size_t(i * p.n + j);
      ASSERT_EQ(pre[at], plain[at]) << i << "," << j;
      ASSERT_EQ(out[at], gelu[at]) << i << "," << j;
      const double want_pre = p.dot(i, j) + p.bias[size_t(j)];
      EXPECT_NEAR(pre[at], want_pre, 1e-4 * (1 + std::abs(want_pre)));
      EXPECT_NEAR(out[at], gelu_tanh(want_pre), 1e-4 * (1 + std::abs(want_pre)));
    }
}

TEST(GemmEpilogue, DgeluMultipliesTheProductByTheDerivativeAtAux) {
  const Product p(2);
  Backend& cpu = backend_for(kCPU);
  std::vector<float> out(size_t(p.m * p.n)), plain(out.size()), dx(out.size());
  std::vector<float> aux = p.aux;
  GemmArgs g = p.args(ComputePrecision::f32);
  g.epilogue = GemmEpilogue::dgelu_tanh, g.aux = aux.data(), g.c = out.data();
  cpu.gemm(g);
  GemmArgs separate = p.args(ComputePrecision::f32);
  separate.c = plain.data();
  cpu.gemm(separate);
  cpu.unary_backward(UnaryOp::gelu_tanh, int64_t(plain.size()), aux.data(), nullptr, plain.data(), dx.data());
  EXPECT_EQ(aux, p.aux) << "aux is read, not written";
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      const size_t at = size_t(i * p.n + j);
      ASSERT_EQ(out[at], dx[at]) << i << "," << j;
      const double want = p.dot(i, j) * gelu_tanh_derivative(p.aux[at]);
      EXPECT_NEAR(out[at], want, 1e-4 * (1 + std::abs(want)));
    }
}

// A 16-bit C is the rounding of what an f32 C would hold, with and without the GELU.
TEST(GemmEpilogue, HalfOutputIsTheRoundedResult) {
  const Product p(3);
  Backend& cpu = backend_for(kCPU);
  for (ComputePrecision precision : {ComputePrecision::bf16, ComputePrecision::fp16})
    for (GemmEpilogue e : {GemmEpilogue::none, GemmEpilogue::gelu_tanh, GemmEpilogue::dgelu_tanh}) {
      std::vector<float> aux = p.aux, aux_f32 = p.aux, f32_out(size_t(p.m * p.n));
      std::vector<uint16_t> half(f32_out.size());
      GemmArgs wide = p.args(precision);
      wide.epilogue = e, wide.aux = aux_f32.data(), wide.c = f32_out.data();
      if (e == GemmEpilogue::gelu_tanh) wide.bias = p.bias.data();
      cpu.gemm(wide);
      GemmArgs narrow = wide;
      narrow.aux = aux.data(), narrow.c = nullptr, narrow.c_half = half.data();
      cpu.gemm(narrow);
      for (size_t i = 0; i < half.size(); ++i) {
        const uint16_t want = precision == ComputePrecision::bf16 ? f32_to_bf16(f32_out[i]) : f32_to_f16(f32_out[i]);
        ASSERT_EQ(half[i], want) << "precision " << int(precision) << " epilogue " << int(e) << " element " << i;
        ASSERT_EQ(aux[i], aux_f32[i]) << "the pre-activation is the same either way";
      }
    }
}

TEST(GemmEpilogue, RefusesWhatItCannotHonour) {
  const Product p(4);
  std::vector<float> out(size_t(2 * p.m * p.n)), aux(out.size());
  std::vector<uint16_t> half(out.size());
  auto error_of = [&](GemmArgs g) {
    try {
      backend_for(kCPU).gemm(g);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  GemmArgs g = p.args(ComputePrecision::f32);
  g.c = out.data(), g.epilogue = GemmEpilogue::gelu_tanh;
  EXPECT_NE(error_of(g).find("need aux"), std::string::npos) << error_of(g);
  g.aux = aux.data(), g.beta = 1.0f;
  EXPECT_NE(error_of(g).find("alpha 1 and beta 0"), std::string::npos) << error_of(g);
  g.beta = 0.0f, g.ldc = p.n + 1;
  EXPECT_NE(error_of(g).find("rows n apart"), std::string::npos) << error_of(g);
  const std::vector<float> bias(size_t(p.n), 1.0f);
  g.ldc = p.n, g.epilogue = GemmEpilogue::dgelu_tanh, g.bias = bias.data();
  EXPECT_NE(error_of(g).find("dgelu_tanh epilogue takes no bias"), std::string::npos) << error_of(g);
  GemmArgs h = p.args(ComputePrecision::f32);
  h.c_half = half.data();
  EXPECT_NE(error_of(h).find("needs a bf16 or fp16 product"), std::string::npos) << error_of(h);
}

}  // namespace
}  // namespace ld
