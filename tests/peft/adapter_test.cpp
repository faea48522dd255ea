// The Houlsby adapter: with up = 0 the model is unchanged; with up perturbed, the adapted output
// projection matches a float64 formula (GELU and ReLU); it sits on the right modules, its
// trainable count is 2 * C * width + width + C per adapter, and bad configurations are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ops/ops.hpp"
#include "peft/adapter.hpp"
#include "peft_test_util.hpp"
#include "test_util.hpp"

namespace ld::peft {
namespace {

using test::randomize;
using test::tiny_model;
using ::ld::test::error_message;
using ::ld::test::expect_mentions;
using ::ld::test::max_abs_diff;

std::vector<double> doubles(const Tensor& t) {
  const std::vector<float> f = t.contiguous().to_vector<float>();
  return std::vector<double>(f.begin(), f.end());
}

// y W^T + b for y [N, in], W [out, in], in double.
std::vector<double> affine(const std::vector<double>& y, int64_t N, int64_t in, const std::vector<double>& W,
                           const std::vector<double>& b, int64_t out) {
  std::vector<double> r(size_t(N * out));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double v = b.empty() ? 0.0 : b[size_t(o)];
      for (int64_t i = 0; i < in; ++i) v += y[size_t(n * in + i)] * W[size_t(o * in + i)];
      r[size_t(n * out + o)] = v;
    }
  return r;
}

struct Case {
  models::StackKind kind;
  std::string nonlinearity;
  const char* name;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class Houlsby : public ::testing::TestWithParam<Case> {};

TEST_P(Houlsby, StartsUnchangedThenMatchesFloat64Formula) {
  auto lm = tiny_model(GetParam().kind);
  Tensor ids = test::ids_of({3, 1, 4, 1, 5, 9}, 1);
  Tensor base = lm->forward(ids).contiguous().clone();
  Generator gen(2);
  const AdapterConfig config{.width = 5, .nonlinearity = GetParam().nonlinearity};
  AdapterModel adapters = apply_houlsby(*lm, config, gen);
  ASSERT_EQ(adapters.targets.size(), 4u);  // after attention and after the FFN, 2 layers
  EXPECT_EQ(max_abs_diff(lm->forward(ids), base), 0.0f);

  for (size_t i = 0; i < adapters.targets.size(); ++i) {
    randomize(adapters.targets[i].adapter->adapter_up->weight, 10 + i);
    randomize(adapters.targets[i].adapter->adapter_up->bias, 20 + i);
  }
  EXPECT_GT(max_abs_diff(lm->forward(ids), base), 1e-2f);

  // One adapted projection (layer 0's FFN output) against the formula in double.
  const AdapterTarget& t = adapters.targets[1];
  const int64_t in = t.projection.in_features(), C = t.projection.out_features(), w = config.width, N = 3;
  Tensor x = randn({N, in}, &gen);
  std::vector<double> W = doubles(t.projection.weight());
  if (t.projection.fan_in_fan_out()) W = doubles(t.projection.weight().transpose(0, 1));
  const Tensor& bias = t.projection.linear ? t.projection.linear->bias : t.projection.conv1d->bias;
  const std::vector<double> y = affine(doubles(x), N, in, W, bias.defined() ? doubles(bias) : std::vector<double>{}, C);
  std::vector<double> h = affine(y, N, C, doubles(t.adapter->adapter_down->weight),
                                 doubles(t.adapter->adapter_down->bias), w);
  const bool relu = GetParam().nonlinearity == "relu";
  for (double& v : h) v = relu ? std::max(v, 0.0) : 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
  const std::vector<double> up = affine(h, N, w, doubles(t.adapter->adapter_up->weight),
                                        doubles(t.adapter->adapter_up->bias), C);
  Tensor got = t.projection.linear ? t.projection.linear->forward(x) : t.projection.conv1d->forward(x);
  const std::vector<double> g = doubles(got);
  double worst = 0;
  for (size_t k = 0; k < g.size(); ++k) worst = std::max(worst, std::abs(g[k] - (y[k] + up[k])));
  EXPECT_LT(worst, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Models, Houlsby,
                         ::testing::Values(Case{models::StackKind::gpt2, "gelu", "gpt2_gelu"},
                                           Case{models::StackKind::llama, "relu", "llama_relu"},
                                           Case{models::StackKind::llama, "gelu", "llama_gelu"}),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(HoulsbyAdapter, TargetsAndTrainableCount) {
  auto lm = tiny_model(models::StackKind::gpt2);
  Generator gen(1);
  AdapterModel a = apply_houlsby(*lm, {.width = 3}, gen);
  std::vector<std::string> names;
  for (const AdapterTarget& t : a.targets) names.push_back(t.projection.name);
  EXPECT_EQ(names, (std::vector<std::string>{"transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj",
                                             "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"}));
  const int64_t C = 16, w = 3;
  EXPECT_EQ(trainable_parameter_count(*lm), 4 * (2 * C * w + w + C));
  EXPECT_EQ(a.trainable_parameter_count(), 4 * (2 * C * w + w + C));
  auto llama = tiny_model(models::StackKind::llama);
  EXPECT_EQ(houlsby_targets(*llama)[1], "model.layers.0.mlp.down_proj");
}

TEST(HoulsbyAdapter, BadConfigurationsGiveOneClearError) {
  auto lm = tiny_model(models::StackKind::llama);
  Generator gen(1);
  expect_mentions(error_message([&] { apply_houlsby(*lm, {.width = 0}, gen); }), {"width=0"});
  expect_mentions(error_message([&] { apply_houlsby(*lm, {.width = 2, .nonlinearity = "tanh"}, gen); }),
                  {"tanh", "gelu, relu"});
  apply_houlsby(*lm, {.width = 2}, gen);
  expect_mentions(error_message([&] { apply_houlsby(*lm, {.width = 2}, gen); }), {"already has an adapter"});
}

}  // namespace
}  // namespace ld::peft
