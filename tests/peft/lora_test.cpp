// LoRA: the forward against a float64 formula for Linear and Conv1D (plain and rsLoRA scaling),
// merged logits equal to base + adapter on tiny GPT-2 and LLaMA models, unmerge restoring the
// weights, gradients reaching only LoRA's tensors, trainable counts equal to r * (in + out) sums,
// target selection (defaults, all-linear), and clear errors for bad configurations.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nn/conv1d.hpp"
#include "nn/layers.hpp"
#include "ops/ops.hpp"
#include "peft/lora.hpp"
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

// y[n, o] = sum_i x[n, i] W(o, i) + b[o] + scale * sum_k B[o, k] sum_i A[k, i] x[n, i], in double.
// w_at(o, i) reads the base weight in its own layout.
template <typename WAt>
std::vector<double> lora_reference(const std::vector<double>& x, int64_t N, int64_t in, int64_t out, WAt w_at,
                                   const std::vector<double>& b, const std::vector<double>& A,
                                   const std::vector<double>& B, int64_t r, double scale) {
  std::vector<double> y(size_t(N * out));
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> ax(size_t(r), 0.0);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t i = 0; i < in; ++i) ax[size_t(k)] += A[size_t(k * in + i)] * x[size_t(n * in + i)];
    for (int64_t o = 0; o < out; ++o) {
      double v = b[size_t(o)];
      for (int64_t i = 0; i < in; ++i) v += w_at(o, i) * x[size_t(n * in + i)];
      for (int64_t k = 0; k < r; ++k) v += scale * B[size_t(o * r + k)] * ax[size_t(k)];
      y[size_t(n * out + o)] = v;
    }
  }
  return y;
}

double max_diff(const std::vector<double>& a, const Tensor& b) {
  const std::vector<double> v = doubles(b);
  EXPECT_EQ(a.size(), v.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < v.size(); ++i) m = std::max(m, std::abs(a[i] - v[i]));
  return m;
}

class LoraForward : public ::testing::TestWithParam<bool> {};  // param: use_rslora

TEST_P(LoraForward, LinearMatchesFloat64Formula) {
  const int64_t in = 5, out = 7, r = 3;
  Generator gen(1);
  nn::Linear layer(in, out, /*bias=*/true, gen);
  randomize(layer.bias, 2);
  const LoraConfig config{.r = r, .alpha = 6.0, .dropout = 0.0, .target_modules = {}, .use_rslora = GetParam()};
  auto lora = std::make_shared<LoraLayer>(in, out, config, gen);
  randomize(lora->lora_B->weight, 3);
  layer.attach_adapter(lora);
  Tensor x = randn({2, 3, in}, &gen);
  const std::vector<double> W = doubles(layer.weight);
  const auto ref = lora_reference(doubles(x), 6, in, out, [&](int64_t o, int64_t i) { return W[size_t(o * in + i)]; },
                                  doubles(layer.bias), doubles(lora->lora_A->weight), doubles(lora->lora_B->weight), r,
                                  GetParam() ? 6.0 / std::sqrt(3.0) : 2.0);
  Tensor y = layer.forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 3, out}));
  EXPECT_LT(max_diff(ref, y), 1e-5);
}

TEST_P(LoraForward, Conv1DMatchesFloat64Formula) {
  const int64_t in = 6, out = 4, r = 2;
  Generator gen(4);
  nn::Conv1D layer(in, out, gen, 0.3);
  randomize(layer.bias, 5);
  const LoraConfig config{.r = r, .alpha = 3.0, .dropout = 0.0, .target_modules = {}, .use_rslora = GetParam()};
  auto lora = std::make_shared<LoraLayer>(in, out, config, gen);
  randomize(lora->lora_B->weight, 6);
  layer.attach_adapter(lora);
  Tensor x = randn({5, in}, &gen);
  const std::vector<double> W = doubles(layer.weight);  // [in, out]
  const auto ref = lora_reference(doubles(x), 5, in, out, [&](int64_t o, int64_t i) { return W[size_t(i * out + o)]; },
                                  doubles(layer.bias), doubles(lora->lora_A->weight), doubles(lora->lora_B->weight), r,
                                  GetParam() ? 3.0 / std::sqrt(2.0) : 1.5);
  EXPECT_LT(max_diff(ref, layer.forward(x)), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Scaling, LoraForward, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "rsLoRA" : "alpha_over_r"; });

TEST(Lora, InitIsKaimingUniformAndZero) {
  Generator gen(9);
  const int64_t in = 400;
  LoraLayer lora(in, 3, LoraConfig{.r = 50}, gen);
  const std::vector<float> a = lora.lora_A->weight.to_vector<float>();
  const double bound = 1.0 / std::sqrt(double(in));
  double lo = 1, hi = -1, sq = 0;
  for (float v : a) {
    lo = std::min(lo, double(v));
    hi = std::max(hi, double(v));
    sq += double(v) * v;
  }
  EXPECT_GE(lo, -bound);
  EXPECT_LE(hi, bound);
  EXPECT_GT(hi, 0.95 * bound);  // 20000 draws reach the edges
  EXPECT_NEAR(sq / double(a.size()), bound * bound / 3.0, 0.05 * bound * bound / 3.0);  // U(-b, b) variance
  EXPECT_EQ(max_abs_diff(lora.lora_B->weight, zeros({3, 50})), 0.0f);
}

struct ModelCase {
  models::StackKind kind;
  std::vector<std::string> targets;
  const char* name;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

class LoraMerge : public ::testing::TestWithParam<ModelCase> {};

TEST_P(LoraMerge, MergedLogitsEqualAdapterLogitsAndUnmergeRestores) {
  auto lm = tiny_model(GetParam().kind);
  Tensor ids = test::ids_of({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}, 2);
  Tensor base_logits = lm->forward(ids).contiguous().clone();
  Generator gen(11);
  LoraModel lora = apply_lora(*lm, {.r = 4, .alpha = 8.0, .target_modules = GetParam().targets}, gen,
                              lm->hf_config().model_type);
  ASSERT_FALSE(lora.targets.empty());
  EXPECT_EQ(max_abs_diff(lm->forward(ids), base_logits), 0.0f) << "B = 0 must leave the model unchanged";
  std::map<std::string, Tensor> before;
  for (const LoraTarget& t : lora.targets) {
    randomize(t.lora->lora_B->weight, 100 + before.size());
    before[t.projection.name] = t.projection.weight().clone();
  }
  Tensor adapted = lm->forward(ids).contiguous().clone();
  EXPECT_GT(max_abs_diff(adapted, base_logits), 1e-2f) << "the adapter must change the logits";

  merge_lora(lora);
  for (const LoraTarget& t : lora.targets) EXPECT_TRUE(t.lora->merged);
  EXPECT_LT(max_abs_diff(lm->forward(ids), adapted), 1e-5f);
  std::map<std::string, Tensor> merged;
  for (const LoraTarget& t : lora.targets) merged[t.projection.name] = t.projection.weight().clone();
  merge_lora(lora);  // a second merge changes nothing
  for (const LoraTarget& t : lora.targets)
    EXPECT_EQ(max_abs_diff(t.projection.weight(), merged[t.projection.name]), 0.0f) << t.projection.name;

  unmerge_lora(lora);
  unmerge_lora(lora);  // and a second unmerge neither
  for (const LoraTarget& t : lora.targets)
    EXPECT_LT(max_abs_diff(t.projection.weight(), before[t.projection.name]), 1e-6f) << t.projection.name;
  EXPECT_LT(max_abs_diff(lm->forward(ids), adapted), 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(
    Models, LoraMerge,
    ::testing::Values(ModelCase{models::StackKind::gpt2, {}, "gpt2_default"},
                      ModelCase{models::StackKind::gpt2, {"all-linear"}, "gpt2_all_linear"},
                      ModelCase{models::StackKind::llama, {}, "llama_default"},
                      ModelCase{models::StackKind::llama, {"all-linear"}, "llama_all_linear"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(Lora, GradientsReachOnlyLoraTensors) {
  auto lm = tiny_model(models::StackKind::llama);
  lm->train();
  Generator gen(12);
  LoraModel lora = apply_lora(*lm, {.r = 2, .alpha = 4.0, .dropout = 0.1, .target_modules = {"all-linear"}}, gen);
  for (const LoraTarget& t : lora.targets) randomize(t.lora->lora_B->weight, 7);
  Tensor ids = test::ids_of({1, 2, 3, 4, 5, 6}, 1);
  Tensor loss = ops::cross_entropy(lm->forward(ids).reshape({6, -1}), test::ids_of({2, 3, 4, 5, 6, 7}, 1).reshape({6}));
  loss.backward();
  int64_t lora_tensors = 0;
  for (const auto& [name, t] : lm->named_parameters()) {
    const bool is_lora = name.find(".lora.lora_") != std::string::npos;
    EXPECT_EQ(t.requires_grad(), is_lora) << name;
    EXPECT_EQ(t.grad().defined(), is_lora) << name;
    if (is_lora) {
      ++lora_tensors;
      EXPECT_GT(max_abs_diff(t.grad(), zeros(t.shape())), 0.0f) << name << ": no gradient arrived";
    }
  }
  EXPECT_EQ(lora_tensors, 2 * int64_t(lora.targets.size()));
}

// Activation checkpointing re-runs blocks in backward; LoRA's tensors must still get the same gradients.
TEST(Lora, GradientsAreTheSameUnderActivationCheckpointing) {
  std::vector<std::vector<float>> grads[2];
  for (int checkpointed = 0; checkpointed < 2; ++checkpointed) {
    auto lm = tiny_model(models::StackKind::gpt2);
    lm->set_checkpointing(checkpointed);
    Generator gen(13);
    LoraModel lora = apply_lora(*lm, {.r = 2, .target_modules = {"all-linear"}}, gen);
    for (size_t i = 0; i < lora.targets.size(); ++i) randomize(lora.targets[i].lora->lora_B->weight, 60 + i);
    ops::sum(lm->forward(test::ids_of({4, 5, 6, 7}, 1))).backward();
    for (const LoraTarget& t : lora.targets)
      for (const Tensor& w : {t.lora->lora_A->weight, t.lora->lora_B->weight}) {
        ASSERT_TRUE(w.grad().defined()) << t.projection.name << " checkpointed=" << checkpointed;
        grads[checkpointed].push_back(w.grad().to_vector<float>());
      }
  }
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i)
    for (size_t j = 0; j < grads[0][i].size(); ++j) ASSERT_NEAR(grads[0][i][j], grads[1][i][j], 1e-5f) << i;
}

TEST(Lora, TrainableCountsMatchFormulas) {
  const int64_t r = 4, C = 16, D = 4, Hkv = 2, F = 24, V = 37, L = 2;
  {
    auto lm = tiny_model(models::StackKind::gpt2);
    Generator gen(1);
    LoraModel lora = apply_lora(*lm, {.r = r}, gen, "gpt2");  // c_attn: C -> 3C
    EXPECT_EQ(lora.config.target_modules, std::vector<std::string>{"c_attn"});
    EXPECT_EQ(trainable_parameter_count(*lm), L * r * (C + 3 * C));
    EXPECT_EQ(lora.trainable_parameter_count(), L * r * (C + 3 * C));
  }
  {
    auto lm = tiny_model(models::StackKind::llama);
    Generator gen(1);
    LoraModel lora = apply_lora(*lm, {.r = r}, gen, "llama");  // q: C -> C, v: C -> Hkv * D
    EXPECT_EQ(trainable_parameter_count(*lm), L * r * ((C + C) + (C + Hkv * D)));
  }
  {
    auto lm = tiny_model(models::StackKind::llama, 7, /*tied=*/false);
    Generator gen(1);
    LoraModel lora = apply_lora(*lm, {.r = r, .target_modules = {"all-linear"}}, gen);
    const int64_t per_layer = (C + C) + 2 * (C + Hkv * D) + (C + C) + 2 * (C + F) + (F + C);
    EXPECT_EQ(trainable_parameter_count(*lm), L * r * per_layer) << "lm_head (" << V << " outputs) must be excluded";
    EXPECT_EQ(lora.config.target_modules,
              (std::vector<std::string>{"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));
  }
}

TEST(Lora, TargetsFollowPeftNameRule) {
  auto lm = tiny_model(models::StackKind::gpt2);
  Generator gen(1);
  // "attn.c_proj" matches transformer.h.{i}.attn.c_proj but not mlp.c_proj; "h.1.mlp.c_fc" one layer.
  LoraModel lora = apply_lora(*lm, {.r = 2, .target_modules = {"attn.c_proj", "h.1.mlp.c_fc"}}, gen);
  std::set<std::string> names;
  for (const LoraTarget& t : lora.targets) names.insert(t.projection.name);
  EXPECT_EQ(names, (std::set<std::string>{"transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj",
                                          "transformer.h.1.mlp.c_fc"}));
  EXPECT_FALSE(matches_target("transformer.h.0.attn.c_proj", "n.c_proj"));
  EXPECT_TRUE(matches_target("lm_head", "lm_head"));
}

TEST(Lora, BadConfigurationsGiveOneClearError) {
  auto lm = tiny_model(models::StackKind::llama);
  Generator gen(1);
  const std::string none = error_message([&] { apply_lora(*lm, {.r = 4, .target_modules = {"qproj", "mlp"}}, gen); });
  expect_mentions(none, {"qproj, mlp", "match no Linear/Conv1D", "model.layers.0.self_attn.q_proj"});
  expect_mentions(error_message([&] { apply_lora(*lm, {.r = 0, .target_modules = {"q_proj"}}, gen); }), {"rank r=0"});
  expect_mentions(error_message([&] { apply_lora(*lm, {.r = 2, .dropout = 1.0, .target_modules = {"q_proj"}}, gen); }),
                  {"lora_dropout=1"});
  expect_mentions(error_message([&] { apply_lora(*lm, {.r = 2}, gen, "t5"); }), {"t5", "no default target_modules"});
  // Nothing was frozen or attached by the failed calls.
  EXPECT_EQ(trainable_parameter_count(*lm), lm->parameter_count());
  apply_lora(*lm, {.r = 2, .target_modules = {"q_proj"}}, gen);
  expect_mentions(error_message([&] { apply_lora(*lm, {.r = 2, .target_modules = {"q_proj"}}, gen); }),
                  {"already has a LoRA adapter", "q_proj"});
}

}  // namespace
}  // namespace ld::peft
