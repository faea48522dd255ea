#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "core/rng.hpp"
#include "train/adamw.hpp"

using namespace ld;

// Three AdamW steps against the update written out in float64 (PyTorch's torch.optim.AdamW rule:
// p -= lr*wd*p; m,v EMA; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)).
TEST(AdamW, MatchesFloat64Reference) {
  Generator gen(7);
  Tensor p = randn({37}, &gen).set_requires_grad(true);
  std::vector<float> initial = p.to_vector<float>();
  std::array<double, 37> ref{}, m{}, v{};  // std::array: GCC 12 -O3 warns falsely on vector<double> here
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = initial[i];
  train::AdamWOptions opt;
  opt.lr = 0.01f, opt.weight_decay = 0.1f;
  std::vector<train::ParamGroup> groups(1);
  groups[0].params.push_back(p);
  groups[0].weight_decay = 0.1f;
  train::AdamW adamw(groups, opt);
  for (int step = 1; step <= 3; ++step) {
    Tensor g = randn({37}, &gen);
    p.set_grad(g);
    adamw.step(0.5f);
    std::vector<float> gv = g.to_vector<float>();
    double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.999, step);
    for (size_t i = 0; i < ref.size(); ++i) {
      double gi = 0.5 * gv[i];
      m[i] = 0.9 * m[i] + 0.1 * gi;
      v[i] = 0.999 * v[i] + 0.001 * gi * gi;
      ref[i] *= 1 - 0.01 * 0.1;
      ref[i] -= 0.01 / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + 1e-8);
    }
  }
  std::vector<float> got = p.to_vector<float>();
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-5 * (1 + std::fabs(ref[i]))) << i;
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Tensor p = ones({4}).set_requires_grad(true);
  std::vector<train::ParamGroup> groups(1);
  groups[0].params.push_back(p);
  train::AdamW adamw(groups, train::AdamWOptions{});
  adamw.step();
  EXPECT_EQ(p.to_vector<float>(), std::vector<float>(4, 1.0f));
}
