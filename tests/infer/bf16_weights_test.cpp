// bf16 weights for inference: the Linear / Conv1D / Embedding kernels against float64 references on
// the bf16-rounded weights (the only rounding there is: activations stay f32), the in-place model
// conversion (tied weights stay tied, logits stay close), and the refusal to record a backward.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "infer/bf16_weights.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "nn/layers.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld {
namespace {

std::vector<double> rounded(const Tensor& w_bf16) {
  std::vector<double> r;
  for (float v : w_bf16.to(DType::f32).to_vector<float>()) r.push_back(v);
  return r;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << "element " << i;
}

// m rows: 1..8 take the small-M kernel (all its register blockings, tails in k and in the outputs,
// split between the threads: >= 2^19 multiply-adds); 20 and 33 (and X W from 3 rows) the
// widen-a-block-then-sgemm path of a prefill.
class Bf16Linear : public ::testing::TestWithParam<int64_t> {};

TEST_P(Bf16Linear, LinearMatchesFloat64OnRoundedWeights) {
  autograd::NoGradGuard no_grad;
  const int64_t m = GetParam(), n = 2053, k = 260;  // k: 8 blocks of 32 and a masked tail
  Generator gen(7 + uint64_t(m));
  Tensor x = randn({m, k}, &gen), w = randn({n, k}, &gen).to(DType::bf16), b = randn({n}, &gen);
  std::vector<double> wr = rounded(w);
  std::vector<float> xv = x.to_vector<float>(), bv = b.to_vector<float>();
  std::vector<double> want(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = bv[size_t(j)];
      for (int64_t kk = 0; kk < k; ++kk) acc += double(xv[size_t(i * k + kk)]) * wr[size_t(j * k + kk)];
      want[size_t(i * n + j)] = acc;
    }
  expect_close(ops::linear(x, w, b).to_vector<float>(), want, 1e-4);  // 260-term f32 sums
}

TEST_P(Bf16Linear, Conv1DMatmulMatchesFloat64OnRoundedWeights) {
  autograd::NoGradGuard no_grad;
  // n: 14 blocks of 128 columns and a ragged tail; k: rows of W four at a time and two more, split
  // between the threads for one row of X; with and without a bias (the product accumulates onto it)
  const int64_t m = GetParam(), n = 1800, k = 302;
  Generator gen(11 + uint64_t(m));
  Tensor x = randn({m, k}, &gen), w = randn({k, n}, &gen).to(DType::bf16), b = randn({n}, &gen);
  std::vector<double> wr = rounded(w);
  std::vector<float> xv = x.to_vector<float>(), bv = b.to_vector<float>();
  for (bool with_bias : {false, true}) {
    std::vector<double> want(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = with_bias ? bv[size_t(j)] : 0.0;
        for (int64_t kk = 0; kk < k; ++kk) acc += double(xv[size_t(i * k + kk)]) * wr[size_t(kk * n + j)];
        want[size_t(i * n + j)] = acc;
      }
    Tensor got = with_bias ? ops::projection(x, w, ops::WeightLayout::in_out, b) : ops::matmul(x, w);
    expect_close(got.to_vector<float>(), want, 1e-4);  // 302-term f32 sums
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, Bf16Linear, ::testing::Values(1, 2, 3, 4, 5, 8, 20, 33));

TEST(Bf16Weights, EmbeddingReadsRoundedRows) {
  autograd::NoGradGuard no_grad;
  Generator gen(3);
  Tensor table = randn({50, 24}, &gen).to(DType::bf16);
  std::vector<double> tr = rounded(table);
  Tensor ids = from_vector<int64_t>({4, 0, 49, 4}, {2, 2});
  Tensor out = ops::embedding(ids, table);
  ASSERT_EQ(out.shape(), (Shape{2, 2, 24}));
  std::vector<float> got = out.to_vector<float>();
  const int64_t id[] = {4, 0, 49, 4};
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t c = 0; c < 24; ++c) ASSERT_EQ(double(got[size_t(i * 24 + c)]), tr[size_t(id[i] * 24 + c)]);
}

io::HfModelConfig tiny_gpt2() {
  models::StackConfig s;
  s.kind = models::StackKind::gpt2;
  s.n_layer = 2, s.n_head = 2, s.n_kv_head = 2, s.n_embd = 32, s.vocab_size = 61, s.n_positions = 16;
  s.intermediate_size = 128;
  return io::make_hf_config(s, /*tie_word_embeddings=*/true);
}

TEST(Bf16Weights, ModelConversionKeepsTiesAndLogits) {
  Generator g1(5), g2(5);
  auto ref = models::make_causal_lm(tiny_gpt2(), g1);
  auto model = models::make_causal_lm(tiny_gpt2(), g2);
  // 2 layers x (c_attn, c_proj, c_fc, c_proj) + wte (tied with lm_head: once) + wpe
  EXPECT_EQ(infer::to_bf16_weights(*model), 10);
  EXPECT_EQ(infer::to_bf16_weights(*model), 0);  // already converted
  int64_t bf16 = 0;
  for (const auto& [name, p] : model->state_dict()) {
    if (p.dtype() == DType::bf16) {
      ++bf16;
      EXPECT_FALSE(p.requires_grad()) << name;
    }
  }
  EXPECT_EQ(bf16, 11) << "the tied lm_head.weight must see the conversion too";
  autograd::NoGradGuard no_grad;
  Tensor ids = from_vector<int64_t>({1, 7, 3, 60, 2, 9}, {2, 3});
  std::vector<float> want = ref->forward(ids).to_vector<float>(), got = model->forward(ids).to_vector<float>();
  ASSERT_EQ(got.size(), want.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    max_diff = std::max(max_diff, double(std::abs(got[i] - want[i])));
    max_abs = std::max(max_abs, double(std::abs(want[i])));
  }
  EXPECT_GT(max_diff, 0.0) << "the weights were rounded, the logits must move";
  EXPECT_LT(max_diff, 0.02 * max_abs);  // bf16 keeps 8 bits of mantissa
}

TEST(Bf16Weights, BackwardThroughBf16WeightsIsAnError) {
  Generator gen(9);
  Tensor w = randn({4, 8}, &gen).to(DType::bf16);
  Tensor x = randn({2, 8}, &gen).set_requires_grad(true);
  test::expect_mentions(test::error_message([&] { ops::linear(x, w); }), {"linear", "bf16", "inference only"});
  Tensor wk = randn({8, 4}, &gen).to(DType::bf16);
  test::expect_mentions(test::error_message([&] { ops::matmul(x, wk); }), {"matmul", "bf16", "inference only"});
  autograd::NoGradGuard no_grad;
  EXPECT_EQ(ops::linear(x, w).shape(), (Shape{2, 4}));
}

}  // namespace
}  // namespace ld
