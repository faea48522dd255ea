// ops::projection's addend: a fresh output handed over with std::move becomes the result's buffer
// (LoRA's y + B h with no add pass), with the same values and gradients as the separate add; an
// addend someone else still holds is copied and left as it was. (Values and gradients of the
// copying path against float64 are in matmul_test.cpp.)
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace ld {
namespace {

constexpr int64_t kRows = 6, kIn = 5, kRank = 3, kOut = 7;

Tensor random(const Shape& shape, uint64_t seed, bool requires_grad = true) {
  Generator gen(seed);
  Tensor t = normal(shape, 0.0f, 1.0f, &gen);
  t.set_requires_grad(requires_grad);
  return t;
}

struct Inputs {
  Tensor x = random({2, kRows / 2, kIn}, 1), base = random({kIn, kOut}, 2), bias = random({kOut}, 3);
  Tensor h = random({2, kRows / 2, kRank}, 4), b = random({kOut, kRank}, 5), probe = random({2, kRows / 2, kOut}, 6, false);
};

// sum(probe * out).backward() and the gradients of every input, flattened in a fixed order.
std::vector<float> grads_after(const Tensor& out, const Inputs& in) {
  ops::sum(ops::mul(out, in.probe)).backward();
  std::vector<float> all;
  for (const Tensor* t : {&in.x, &in.base, &in.bias, &in.h, &in.b}) {
    const std::vector<float> g = t->grad().to_vector<float>();
    all.insert(all.end(), g.begin(), g.end());
  }
  return all;
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5) << what << " element " << i;
}

TEST(ProjectionAddend, FreshOutputIsReusedWithTheValuesAndGradientsOfASeparateAdd) {
  Inputs fused, separate;
  Tensor y = ops::projection(fused.x, fused.base, ops::WeightLayout::in_out, fused.bias);
  const void* y_buffer = y.raw();
  Tensor out = ops::projection(fused.h, fused.b, ops::WeightLayout::out_in, Tensor(), std::move(y));
  EXPECT_EQ(out.raw(), y_buffer) << "a fresh addend should become the output's buffer";

  Tensor want = ops::add(ops::add(ops::matmul(separate.x, separate.base), separate.bias),
                         ops::linear(separate.h, separate.b));
  expect_near(out.to_vector<float>(), want.to_vector<float>(), "output");
  expect_near(grads_after(out, fused), grads_after(want, separate), "gradient");
}

TEST(ProjectionAddend, AnAddendStillHeldElsewhereIsCopiedAndLeftUnchanged) {
  Inputs in;
  Tensor y = ops::projection(in.x, in.base, ops::WeightLayout::in_out, in.bias);
  const std::vector<float> before = y.to_vector<float>();
  Tensor out = ops::projection(in.h, in.b, ops::WeightLayout::out_in, Tensor(), y);
  EXPECT_NE(out.raw(), y.raw());
  EXPECT_EQ(y.to_vector<float>(), before);
  expect_near(out.to_vector<float>(), ops::add(y, ops::linear(in.h, in.b)).to_vector<float>(), "output");
}

TEST(ProjectionAddend, RefusesABiasAndAnAddendTogetherAndAMisshapenAddend) {
  Inputs in;
  try {
    ops::projection(in.h, in.b, ops::WeightLayout::out_in, in.bias, random({2, kRows / 2, kOut}, 7));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a bias or an addend, not both"), std::string::npos) << e.what();
  }
  try {
    ops::projection(in.h, in.b, ops::WeightLayout::out_in, Tensor(), random({kRows, kOut}, 8));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("addend [6, 7] does not match the output [2, 3, 7]"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ld
