#include "train/sgd.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.hpp"
#include "optim_ref.hpp"
#include "test_util.hpp"

using namespace ld;

namespace {

struct SgdCase {
  float momentum;
  bool nesterov;
  float grad_scale;
};

// Two parameters in two groups (a matrix with weight decay, a vector without), four steps with fresh
// random gradients, against torch.optim.SGD given the same gradients (already multiplied by grad_scale).
void expect_matches_torch(const SgdCase& c) {
  Generator gen(11);
  std::vector<Tensor> params = {randn({2, 3}, &gen).set_requires_grad(true), randn({4}, &gen).set_requires_grad(true)};
  const std::vector<float> weight_decays = {0.1f, 0.0f};
  nlohmann::json input = {{"lr", 0.05}, {"momentum", c.momentum}, {"nesterov", c.nesterov},
                          {"weight_decays", weight_decays}};
  for (const Tensor& p : params) input["params"].push_back(p.to_vector<float>());
  train::Sgd sgd({{{params[0]}, weight_decays[0]}, {{params[1]}, weight_decays[1]}},
                 {.lr = 0.05f, .momentum = c.momentum, .nesterov = c.nesterov});
  std::vector<std::vector<std::vector<float>>> got;  // [step][param]
  for (int step = 0; step < 4; ++step) {
    nlohmann::json step_grads = nlohmann::json::array();
    for (Tensor& p : params) {
      Tensor g = randn(p.shape(), &gen);
      p.set_grad(g);
      std::vector<float> scaled = g.to_vector<float>();
      for (float& x : scaled) x *= c.grad_scale;
      step_grads.push_back(scaled);
    }
    input["grads"].push_back(step_grads);
    sgd.step(c.grad_scale);
    got.push_back({params[0].to_vector<float>(), params[1].to_vector<float>()});
  }
  EXPECT_EQ(sgd.steps(), 4);
  auto ref = test::torch_optim_ref("sgd", input);
  ASSERT_TRUE(ref);
  for (int step = 0; step < 4; ++step)
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<float> want = (*ref)["params"][step][i].get<std::vector<float>>();
      ASSERT_EQ(want.size(), got[step][i].size());
      for (size_t k = 0; k < want.size(); ++k)
        EXPECT_NEAR(got[step][i][k], want[k], 1e-6 * (1 + std::fabs(want[k])))
            << "momentum " << c.momentum << " nesterov " << c.nesterov << " step " << step << " param " << i
            << " element " << k;
    }
}

}  // namespace

TEST(Sgd, PlainMatchesTorch) {
  SKIP_WITHOUT_TORCH();
  expect_matches_torch({.momentum = 0.0f, .nesterov = false, .grad_scale = 1.0f});
}

TEST(Sgd, MomentumMatchesTorch) {
  SKIP_WITHOUT_TORCH();
  expect_matches_torch({.momentum = 0.9f, .nesterov = false, .grad_scale = 1.0f});
}

TEST(Sgd, NesterovWithGradScaleMatchesTorch) {
  SKIP_WITHOUT_TORCH();
  expect_matches_torch({.momentum = 0.9f, .nesterov = true, .grad_scale = 0.25f});
}

// Two momentum steps written out in float64: buf1 = g1 + wd p0, p1 = p0 - lr buf1;
// buf2 = m buf1 + g2 + wd p1, p2 = p1 - lr buf2.
TEST(Sgd, MomentumMatchesFloat64Recurrence) {
  Tensor p = from_vector(std::vector<float>{1.0f, -2.0f}, {2}).set_requires_grad(true);
  train::Sgd sgd({{{p}, 0.5f}}, {.lr = 0.1f, .momentum = 0.9f, .nesterov = false});
  const double g1[2] = {0.5, 1.0}, g2[2] = {-1.0, 0.25};
  double ref[2] = {1.0, -2.0}, buf[2] = {0, 0};
  p.set_grad(from_vector(std::vector<float>{0.5f, 1.0f}, {2}));
  sgd.step();
  p.set_grad(from_vector(std::vector<float>{-1.0f, 0.25f}, {2}));
  sgd.step();
  for (int i = 0; i < 2; ++i) {
    buf[i] = g1[i] + 0.5 * ref[i];
    ref[i] -= 0.1 * buf[i];
    buf[i] = 0.9 * buf[i] + g2[i] + 0.5 * ref[i];
    ref[i] -= 0.1 * buf[i];
  }
  std::vector<float> got = p.to_vector<float>();
  for (int i = 0; i < 2; ++i) EXPECT_NEAR(got[i], ref[i], 1e-6) << i;
}

TEST(Sgd, SkipsParametersWithoutGradientAndZeroGradClears) {
  Tensor a = ones({3}).set_requires_grad(true), b = ones({3}).set_requires_grad(true);
  train::Sgd sgd({{{a, b}, 0.0f}}, {.lr = 0.5f, .momentum = 0.9f, .nesterov = false});
  a.set_grad(ones({3}));
  sgd.step();
  EXPECT_EQ(a.to_vector<float>(), std::vector<float>(3, 0.5f));
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(3, 1.0f));
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST(Sgd, RejectsNesterovWithoutMomentum) {
  Tensor p = ones({2}).set_requires_grad(true);
  test::expect_mentions(test::error_message([&] {
                          train::Sgd({{{p}, 0.0f}}, {.lr = 0.1f, .momentum = 0.0f, .nesterov = true});
                        }),
                        {"SGD: nesterov needs momentum > 0"});
}
