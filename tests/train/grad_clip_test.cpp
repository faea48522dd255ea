#include "train/grad_clip.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/rng.hpp"
#include "optim_ref.hpp"
#include "test_util.hpp"

using namespace ld;

namespace {

std::vector<Tensor> params_with_random_grads(uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> params = {zeros({3, 5}).set_requires_grad(true), zeros({7}).set_requires_grad(true)};
  for (Tensor& p : params) p.set_grad(randn(p.shape(), &gen));
  return params;
}

// Our pre-clip norm and clipped gradients against torch.nn.utils.clip_grad_norm_ on the same gradients.
void expect_matches_torch(double max_norm) {
  std::vector<Tensor> params = params_with_random_grads(5);
  nlohmann::json input = {{"max_norm", max_norm}};
  for (const Tensor& p : params) input["grads"].push_back(p.grad().to_vector<float>());
  const double norm = train::clip_grad_norm(params, max_norm);
  auto ref = test::torch_optim_ref("clip", input);
  ASSERT_TRUE(ref);
  EXPECT_NEAR(norm, (*ref)["norm"].get<double>(), 1e-6 * norm);
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<float> want = (*ref)["grads"][i].get<std::vector<float>>();
    std::vector<float> got = params[i].grad().to_vector<float>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-6) << "param " << i << " element " << k;
  }
}

}  // namespace

TEST(GradClip, ClipsToMaxNormLikeTorch) {
  SKIP_WITHOUT_TORCH();
  expect_matches_torch(1.0);  // the norm of 22 N(0,1) values is about 4.7: clipped
}

TEST(GradClip, LeavesSmallGradientsAloneLikeTorch) {
  SKIP_WITHOUT_TORCH();
  expect_matches_torch(100.0);
}

// Float64 reference without torch: norm of {3, 4} and {12} is 13; clipping to 6.5 halves (up to 1e-6).
TEST(GradClip, HandComputedNormAndScale) {
  Tensor a = zeros({2}).set_requires_grad(true), b = zeros({1}).set_requires_grad(true),
         frozen = zeros({1}).set_requires_grad(true);  // no grad: skipped
  a.set_grad(from_vector(std::vector<float>{3, 4}, {2}));
  b.set_grad(from_vector(std::vector<float>{12}, {1}));
  EXPECT_DOUBLE_EQ(train::grad_norm({a, b, frozen}), 13.0);
  EXPECT_DOUBLE_EQ(train::clip_grad_norm({a, b, frozen}, 6.5), 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_FLOAT_EQ(a.grad().to_vector<float>()[0], float(3 * coef));
  EXPECT_FLOAT_EQ(a.grad().to_vector<float>()[1], float(4 * coef));
  EXPECT_FLOAT_EQ(b.grad().to_vector<float>()[0], float(12 * coef));
  EXPECT_NEAR(train::grad_norm({a, b}), 6.5, 1e-5);
}

TEST(GradClip, NonFiniteNormIsReportedAndNothingIsScaled) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    Tensor a = zeros({2}).set_requires_grad(true), b = zeros({1}).set_requires_grad(true);
    a.set_grad(from_vector(std::vector<float>{3, 4}, {2}));
    b.set_grad(from_vector(std::vector<float>{bad}, {1}));
    const double norm = train::clip_grad_norm({a, b}, 1.0);
    EXPECT_FALSE(std::isfinite(norm));
    EXPECT_EQ(std::isnan(norm), std::isnan(bad));
    EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3, 4}));
  }
}

TEST(GradClip, RejectsNonPositiveMaxNorm) {
  std::vector<Tensor> params = params_with_random_grads(1);
  test::expect_mentions(test::error_message([&] { train::clip_grad_norm(params, 0.0); }),
                        {"clip_grad_norm: max_norm must be finite and > 0, got 0"});
}
