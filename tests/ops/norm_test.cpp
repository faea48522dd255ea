#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "autograd/engine.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "ops/op_harness.hpp"
#include "test_util.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

constexpr double kLnEps = 1e-5, kRmsEps = 1e-6;

// Naive float64 layernorm (biased variance, as PyTorch) or rmsnorm over the last dim.
Ref ref_norm(const Ref& x, const Ref& w, const Ref* b, bool rms, double eps) {
  Ref y(x.shape);
  int64_t cols = ref_cols(x), rows = ref_rows(x);
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = x.v.data() + r * cols;
    double mean = 0, var = 0;
    if (!rms) {
      for (int64_t j = 0; j < cols; ++j) mean += row[j];
      mean /= double(cols);
    }
    for (int64_t j = 0; j < cols; ++j) var += (row[j] - mean) * (row[j] - mean);
    double rstd = 1.0 / std::sqrt(var / double(cols) + eps);
    for (int64_t j = 0; j < cols; ++j)
      y.v[size_t(r * cols + j)] = (row[j] - mean) * rstd * w.v[size_t(j)] + (b ? b->v[size_t(j)] : 0.0);
  }
  return y;
}

OpCase layernorm_case(InputSpec x, bool bias, const std::string& variant) {
  int64_t cols = x.shape.back();
  OpCase c;
  c.op = "layernorm";
  c.variant = variant;
  c.inputs = {x, in({cols})};
  if (bias) c.inputs.push_back(in({cols}));
  c.run = [bias](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{ops::layernorm(t[0], t[1], bias ? t[2] : Tensor(), kLnEps)};
  };
  c.reference = [bias](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_norm(t[0], t[1], bias ? &t[2] : nullptr, false, kLnEps)};
  };
  return c;
}

OpCase rmsnorm_case(InputSpec x, const std::string& variant) {
  OpCase c;
  c.op = "rmsnorm";
  c.variant = variant;
  c.inputs = {x, in({x.shape.back()})};
  c.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::rmsnorm(t[0], t[1], kRmsEps)}; };
  c.reference = [](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_norm(t[0], t[1], nullptr, true, kRmsEps)};
  };
  return c;
}

Ref ref_add(const Ref& a, const Ref& b) { return ref_broadcast(a, b, [](double u, double v) { return u + v; }); }

OpCase add_layernorm_case(InputSpec x, InputSpec residual, bool bias, const std::string& variant) {
  int64_t cols = x.shape.back();
  OpCase c;
  c.op = "add_layernorm";
  c.variant = variant;
  c.inputs = {x, residual, in({cols})};
  if (bias) c.inputs.push_back(in({cols}));
  c.run = [bias](const std::vector<Tensor>& t) {
    ops::ResidualNorm r = ops::add_layernorm(t[0], t[1], t[2], bias ? t[3] : Tensor(), kLnEps);
    return std::vector<Tensor>{r.sum, r.normed};
  };
  c.reference = [bias](const std::vector<Ref>& t) {
    Ref sum = ref_add(t[0], t[1]);
    return std::vector<Ref>{sum, ref_norm(sum, t[2], bias ? &t[3] : nullptr, false, kLnEps)};
  };
  return c;
}

OpCase add_rmsnorm_case(InputSpec x, InputSpec residual, const std::string& variant) {
  OpCase c;
  c.op = "add_rmsnorm";
  c.variant = variant;
  c.inputs = {x, residual, in({x.shape.back()})};
  c.run = [](const std::vector<Tensor>& t) {
    ops::ResidualNorm r = ops::add_rmsnorm(t[0], t[1], t[2], kRmsEps);
    return std::vector<Tensor>{r.sum, r.normed};
  };
  c.reference = [](const std::vector<Ref>& t) {
    Ref sum = ref_add(t[0], t[1]);
    return std::vector<Ref>{sum, ref_norm(sum, t[2], nullptr, true, kRmsEps)};
  };
  return c;
}

constexpr uint64_t kRandomSeed = 909;

// x (and the residual, same shape) of rank 1-4 in drawn layouts; the bias drawn for layernorm.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  auto random_x = [](Rng& rng) { return in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4)))); };
  add_random_cases(cases, kRandomSeed, "layernorm", 4, [&](Rng& rng) {
    bool bias = draw_bool(rng);
    return layernorm_case(random_x(rng), bias, bias ? "bias" : "no bias");
  });
  add_random_cases(cases, kRandomSeed, "rmsnorm", 3, [&](Rng& rng) { return rmsnorm_case(random_x(rng), ""); });
  add_random_cases(cases, kRandomSeed, "add_layernorm", 3, [&](Rng& rng) {
    InputSpec x = random_x(rng);
    bool bias = draw_bool(rng);
    return add_layernorm_case(x, in_random(rng, x.shape), bias, bias ? "bias" : "no bias");
  });
  add_random_cases(cases, kRandomSeed, "add_rmsnorm", 3, [&](Rng& rng) {
    InputSpec x = random_x(rng);
    return add_rmsnorm_case(x, in_random(rng, x.shape), "");
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(layernorm_case(in({4, 7}), true, "bias, odd cols"));
  cases.push_back(layernorm_case(in({2, 3, 5}, Layout::transposed), false, "no bias, transposed x"));
  cases.push_back(layernorm_case(in({5, 131}, Layout::sliced), true, "sliced x, cols past the lane width"));
  cases.push_back(layernorm_case(in({3, 1, 9}), false, "size-1 dim, no bias"));
  cases.push_back(layernorm_case(in({1, 1}), true, "one element: y = bias"));
  cases.push_back(layernorm_case(in({9}), true, "1-D x"));

  cases.push_back(rmsnorm_case(in({4, 7}), "odd cols"));
  cases.push_back(rmsnorm_case(in({2, 4, 3}, Layout::transposed), "transposed x"));
  cases.push_back(rmsnorm_case(in({3, 70}, Layout::sliced), "sliced x, cols past the lane width"));
  cases.push_back(rmsnorm_case(in({1, 1}), "one element"));

  cases.push_back(add_layernorm_case(in({3, 5}), in({3, 5}), true, "bias"));
  cases.push_back(add_layernorm_case(in({2, 3, 4}, Layout::transposed), in({2, 3, 4}, Layout::sliced), false,
                                     "no bias, transposed x, sliced residual"));
  cases.push_back(add_layernorm_case(in({1, 67}), in({1, 67}), true, "one row past the lane width"));

  cases.push_back(add_rmsnorm_case(in({4, 6}), in({4, 6}, Layout::transposed), "transposed residual"));
  cases.push_back(add_rmsnorm_case(in({2, 1, 9}, Layout::sliced), in({2, 1, 9}), "size-1 dim, sliced x"));
  add_random_shape_cases(cases);
  return cases;
}

TEST(Norm, ShapeAndDtypeErrorsNameTheOpAndTheShapes) {
  Tensor x = zeros({2, 3, 4});
  EXPECT_THROW(ops::layernorm(x, zeros({5}), Tensor()), Error);
  expect_mentions(error_message([&] { ops::layernorm(x, zeros({5}), Tensor()); }), {"layernorm", "[5]", "[2, 3, 4]"});
  expect_mentions(error_message([&] { ops::layernorm(x, zeros({4}), zeros({3})); }), {"layernorm", "bias", "[3]", "[2, 3, 4]"});
  expect_mentions(error_message([&] { ops::rmsnorm(x, zeros({4, 1})); }), {"rmsnorm", "[4, 1]", "[2, 3, 4]"});
  expect_mentions(error_message([&] { ops::add_layernorm(x, zeros({2, 3, 5}), zeros({4}), zeros({4})); }),
                  {"add_layernorm", "residual", "[2, 3, 5]", "[2, 3, 4]"});
  expect_mentions(error_message([&] { ops::add_rmsnorm(x, zeros({3, 4}), zeros({4})); }),
                  {"add_rmsnorm", "[3, 4]", "[2, 3, 4]"});
  expect_mentions(error_message([&] { ops::rmsnorm(x, zeros({4}).to(DType::bf16)); }), {"rmsnorm", "weight"});
  expect_mentions(error_message([&] { ops::layernorm(scalar_tensor(1.0), zeros({1}), Tensor()); }), {"layernorm", "scalar"});
}

// Only one output of the fused op feeding the loss: the other's gradient is absent, not zero-filled.
TEST(Norm, AddLayerNormWithOnlyOneOutputUsedMatchesTheComposedOps) {
  Generator gen(7);
  Tensor w = randn({6}, &gen), b = randn({6}, &gen), seed = randn({3, 6}, &gen);
  for (int used : {0, 1}) {
    Tensor x1 = randn({3, 6}, &gen).set_requires_grad(true);
    Tensor r1 = randn({3, 6}, &gen).set_requires_grad(true);
    Tensor x2 = x1.detach().clone().set_requires_grad(true);
    Tensor r2 = r1.detach().clone().set_requires_grad(true);
    ops::ResidualNorm fused = ops::add_layernorm(x1, r1, w, b);
    ops::sum(ops::mul(used == 0 ? fused.sum : fused.normed, seed)).backward();
    Tensor sum = ops::add(x2, r2);
    ops::sum(ops::mul(used == 0 ? sum : ops::layernorm(sum, w, b), seed)).backward();
    std::vector<float> gx1 = x1.grad().to_vector(), gx2 = x2.grad().to_vector(), gr1 = r1.grad().to_vector();
    for (size_t i = 0; i < gx1.size(); ++i) {
      EXPECT_NEAR(gx1[i], gx2[i], 1e-5) << "output " << used << " [" << i << "]";
      EXPECT_NEAR(gr1[i], gx2[i], 1e-5) << "output " << used << " [" << i << "]";
    }
  }
}

// dw and db sum thousands of rows; the two-level accumulation must keep them at float64 accuracy.
TEST(Norm, WeightGradientsOverManyRowsMatchFloat64) {
  const int64_t rows = 8192, cols = 64;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0.0, 1.0);
  const size_t n = static_cast<size_t>(rows * cols), c = static_cast<size_t>(cols);
  std::vector<float> xv(n), gv(n), wv(c), bv(c);
  for (auto& v : xv) v = float(3.0 + 2.0 * normal(rng));  // an offset mean exercises the centring
  for (auto& v : gv) v = float(normal(rng));
  for (auto& v : wv) v = float(normal(rng));
  for (auto& v : bv) v = float(normal(rng));
  Tensor x = from_vector(xv, {rows, cols}).set_requires_grad(true);
  Tensor w = from_vector(wv, {cols}).set_requires_grad(true);
  Tensor b = from_vector(bv, {cols}).set_requires_grad(true);
  Tensor y = ops::layernorm(x, w, b);
  autograd::run_backward({y}, {from_vector(gv, {rows, cols})});
  std::vector<double> dw(c, 0.0), db(c, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += xv[size_t(r * cols + j)];
    mean /= double(cols);
    for (int64_t j = 0; j < cols; ++j) var += std::pow(xv[size_t(r * cols + j)] - mean, 2);
    double rstd = 1.0 / std::sqrt(var / double(cols) + 1e-5);
    for (int64_t j = 0; j < cols; ++j) {
      double g = gv[size_t(r * cols + j)], xhat = (xv[size_t(r * cols + j)] - mean) * rstd;
      dw[size_t(j)] += g * xhat;
      db[size_t(j)] += g;
    }
  }
  std::vector<float> got_w = w.grad().to_vector(), got_b = b.grad().to_vector();
  for (int64_t j = 0; j < cols; ++j) {
    EXPECT_NEAR(got_w[size_t(j)], dw[size_t(j)], 1e-4 * std::fabs(dw[size_t(j)]) + 1e-4) << j;
    EXPECT_NEAR(got_b[size_t(j)], db[size_t(j)], 1e-4 * std::fabs(db[size_t(j)]) + 1e-4) << j;
  }
}

// The weight gradient reduction splits rows across threads and adds the partials in thread order.
TEST(Norm, BackwardIsDeterministicForAGivenThreadCount) {
  int saved = num_threads();
  Generator gen(5);
  Tensor x = randn({300, 200}, &gen), w = randn({200}, &gen), seed = randn({300, 200}, &gen);
  std::vector<std::vector<float>> grads;
  for (int threads : {1, 2, 2}) {
    set_num_threads(threads);
    Tensor wr = w.detach().clone().set_requires_grad(true);
    ops::sum(ops::mul(ops::rmsnorm(x, wr), seed)).backward();
    grads.push_back(wr.grad().to_vector());
  }
  set_num_threads(saved);
  EXPECT_EQ(grads[1], grads[2]);
  for (size_t j = 0; j < grads[0].size(); ++j) EXPECT_NEAR(grads[0][j], grads[1][j], 1e-4 * (1 + std::fabs(grads[0][j])));
}

}  // namespace
}  // namespace ld::test
