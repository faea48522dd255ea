#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

// Naive float64 (log-)softmax over the last dim, max-shifted.
Ref ref_softmax_last(const Ref& x, bool log) {
  Ref y(x.shape);
  int64_t cols = ref_cols(x), rows = ref_rows(x);
  for (int64_t r = 0; r < rows; ++r) {
    const double* row = x.v.data() + r * cols;
    double m = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t j = 0; j < cols; ++j) m = std::max(m, row[j]);
    for (int64_t j = 0; j < cols; ++j) s += std::exp(row[j] - m);
    for (int64_t j = 0; j < cols; ++j)
      y.v[size_t(r * cols + j)] = log ? row[j] - m - std::log(s) : std::exp(row[j] - m) / s;
  }
  return y;
}

// Any dim: permute it last, apply, permute back.
Ref ref_softmax(const Ref& x, int64_t dim, bool log) {
  if (x.dim() == 0) return Ref({}, log ? 0.0 : 1.0);
  int64_t d = dim < 0 ? dim + x.dim() : dim;
  if (d == x.dim() - 1) return ref_softmax_last(x, log);
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < x.dim(); ++i) perm.push_back(i);
  std::swap(perm[size_t(d)], perm.back());  // a swap is its own inverse
  return ref_permute(ref_softmax_last(ref_permute(x, perm), log), perm);
}

OpCase softmax_case(bool log, InputSpec x, int64_t dim, const std::string& variant) {
  OpCase c;
  c.op = log ? "log_softmax" : "softmax";
  c.variant = variant;
  c.inputs = {x};
  c.run = [log, dim](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{log ? ops::log_softmax(t[0], dim) : ops::softmax(t[0], dim)};
  };
  c.reference = [log, dim](const std::vector<Ref>& t) { return std::vector<Ref>{ref_softmax(t[0], dim, log)}; };
  return c;
}

constexpr uint64_t kRandomSeed = 1010;

// x of rank 1-4 in a drawn layout, softmax over a drawn dim.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  for (bool log : {false, true})
    add_random_cases(cases, kRandomSeed, log ? "log_softmax" : "softmax", 4, [log](Rng& rng) {
      InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
      int64_t dim = draw_dim(rng, int64_t(x.shape.size()));
      return softmax_case(log, x, dim, "dim " + std::to_string(dim));
    });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  for (bool log : {false, true}) {
    cases.push_back(softmax_case(log, in({3, 7}), -1, "last dim, odd cols"));
    cases.push_back(softmax_case(log, in({2, 5, 4}), 1, "middle dim"));
    cases.push_back(softmax_case(log, in({4, 6}, Layout::transposed), -1, "transposed x"));
    cases.push_back(softmax_case(log, in({5, 3}, Layout::sliced), 0, "dim 0 of a sliced x"));
    cases.push_back(softmax_case(log, in({3, 131}), -1, "cols past the lane width"));
    cases.push_back(softmax_case(log, in({2, 1, 3}), 1, "size-1 softmax dim"));
    cases.push_back(softmax_case(log, in({1, 1}), -1, "one element"));
    cases.push_back(softmax_case(log, in({}), 0, "scalar"));
  }
  add_random_shape_cases(cases);
  return cases;
}

// Logits around 1e4 overflow a naive exp; the max shift must keep everything finite and exact.
TEST(Softmax, HugeLogitsStayFiniteAndMatchFloat64) {
  std::vector<float> v = {1e4f, 1e4f + 1.0f, 1e4f - 3.0f, -1e4f, 2e4f, 2e4f - 0.5f, -2e4f, 0.0f};
  Tensor x = from_vector(v, {2, 4});
  Ref ref({2, 4});
  for (size_t i = 0; i < v.size(); ++i) ref.v[i] = v[i];
  for (bool log : {false, true}) {
    std::vector<float> got = (log ? ops::log_softmax(x) : ops::softmax(x)).to_vector();
    Ref want = ref_softmax_last(ref, log);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_TRUE(std::isfinite(got[i])) << (log ? "log_softmax" : "softmax") << " [" << i << "] = " << got[i];
      EXPECT_NEAR(got[i], want.v[i], 1e-5 * std::fabs(want.v[i]) + 1e-6) << i;
    }
  }
}

// Masked attention scores: -inf entries get probability 0 and gradient 0.
TEST(Softmax, MinusInfinityGetsZeroProbabilityAndGradient) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = from_vector<float>({1.0f, -inf, 2.0f, -inf}, {1, 4}).set_requires_grad(true);
  Tensor y = ops::softmax(x);
  std::vector<float> p = y.to_vector();
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(p[3], 0.0f);
  EXPECT_NEAR(p[0] + p[2], 1.0f, 1e-6);
  ops::sum(ops::mul(y, from_vector<float>({1, 2, 3, 4}, {1, 4}))).backward();
  for (float g : x.grad().to_vector()) EXPECT_TRUE(std::isfinite(g));
  EXPECT_EQ(x.grad().to_vector()[1], 0.0f);
}

TEST(Softmax, BadDimNamesTheOp) {
  try {
    ops::softmax(zeros({2, 3}), 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("softmax"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ops::log_softmax(zeros({2}).to(DType::i64)), Error);
}

}  // namespace
}  // namespace ld::test
