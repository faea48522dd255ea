// The pretraining objectives: BERT's 80/10/10 masking (statistics over many tokens, labels,
// determinism), the masked-LM loss against a direct cross-entropy, and the causal-LM loss of an MoE
// model including the routers' auxiliary loss.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/objectives.hpp"

namespace ld::train {
namespace {

using nlohmann::json;

MlmMasking masking() {
  MlmMasking m;
  m.probability = 0.15;
  m.mask_token_id = 1;
  m.vocab_size = 1000;
  m.seed = 7;
  m.never_mask = {0};
  return m;
}

// ids in [2, 1000) except that every 10th is the special id 0.
Tensor sample_ids(int64_t rows, int64_t cols) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < rows * cols; ++i) ids.push_back(i % 10 == 0 ? 0 : 2 + (i * 7919) % 998);
  return from_vector(ids, {rows, cols});
}

TEST(MlmMasking, FollowsThe80_10_10RuleAndLabelsOnlyChosenTokens) {
  const Tensor ids = sample_ids(200, 500);  // 100k tokens, 90k maskable
  const MaskedBatch b = mask_tokens(ids, masking(), /*stream=*/3);
  const auto in = ids.to_vector<int64_t>(), out = b.inputs.to_vector<int64_t>(), labels = b.labels.to_vector<int64_t>();
  int64_t maskable = 0, chosen = 0, masked = 0, randomised = 0, kept = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == 0) {
      EXPECT_EQ(labels[i], -100);  // never chosen
      EXPECT_EQ(out[i], 0);
      continue;
    }
    ++maskable;
    if (labels[i] == -100) {
      EXPECT_EQ(out[i], in[i]) << i;  // not chosen: unchanged
      continue;
    }
    ++chosen;
    EXPECT_EQ(labels[i], in[i]) << i;
    if (out[i] == 1) ++masked;
    else if (out[i] == in[i]) ++kept;
    else ++randomised;
    EXPECT_GE(out[i], 0);
    EXPECT_LT(out[i], 1000);
  }
  // Binomial standard deviations: chosen ~ 107 of 13500, each branch share ~ 0.35-0.4%. 5 sigma bounds.
  EXPECT_NEAR(double(chosen) / double(maskable), 0.15, 0.006);
  EXPECT_NEAR(double(masked) / double(chosen), 0.80, 0.02);
  // A random id equals the original 1 time in 1000: a "kept" share of 10% + 0.01%.
  EXPECT_NEAR(double(randomised) / double(chosen), 0.10, 0.015);
  EXPECT_NEAR(double(kept) / double(chosen), 0.10, 0.015);
}

TEST(MlmMasking, IsAFunctionOfSeedAndStream) {
  const Tensor ids = sample_ids(4, 64);
  const MaskedBatch a = mask_tokens(ids, masking(), 5), b = mask_tokens(ids, masking(), 5);
  EXPECT_EQ(a.inputs.to_vector<int64_t>(), b.inputs.to_vector<int64_t>());
  EXPECT_EQ(a.labels.to_vector<int64_t>(), b.labels.to_vector<int64_t>());
  EXPECT_NE(mask_tokens(ids, masking(), 6).labels.to_vector<int64_t>(), a.labels.to_vector<int64_t>());
  MlmMasking other = masking();
  other.seed = 8;
  EXPECT_NE(mask_tokens(ids, other, 5).labels.to_vector<int64_t>(), a.labels.to_vector<int64_t>());
}

TEST(MlmMasking, RejectsBadOptions) {
  MlmMasking m = masking();
  m.mask_token_id = 1000;
  test::expect_mentions(test::error_message([&] { mask_tokens(sample_ids(1, 4), m, 0); }), {"mask token id 1000"});
  m = masking();
  m.probability = 0;
  test::expect_mentions(test::error_message([&] { mask_tokens(sample_ids(1, 4), m, 0); }), {"mlm_probability"});
}

io::HfModelConfig tiny_bert() {
  return io::parse_hf_config(json{{"model_type", "bert"},
                                  {"architectures", {"BertForMaskedLM"}},
                                  {"vocab_size", 20},
                                  {"hidden_size", 16},
                                  {"num_hidden_layers", 2},
                                  {"num_attention_heads", 2},
                                  {"intermediate_size", 32},
                                  {"max_position_embeddings", 16}},
                             "tiny bert");
}

TEST(MlmLoss, IsTheMeanCrossEntropyOverChosenPositions) {
  Generator gen(3);
  const models::BertForMaskedLM bert(tiny_bert(), gen);
  MlmMasking m = masking();
  m.vocab_size = 20;
  m.probability = 0.3;
  std::vector<int64_t> raw;
  for (int i = 0; i < 2 * 12; ++i) raw.push_back(2 + i % 17);
  const MaskedBatch b = mask_tokens(from_vector(raw, {2, 12}), m, 0);
  const LossParts parts = mlm_loss(bert, b);
  const Tensor logits = bert.forward({.ids = b.inputs, .attention_mask = Tensor(), .token_type_ids = Tensor()});
  const double expected = ops::cross_entropy(logits, b.labels).item();
  EXPECT_NEAR(parts.loss.item(), expected, 1e-6);
  int64_t chosen = 0;
  for (int64_t l : b.labels.to_vector<int64_t>()) chosen += l != -100;
  EXPECT_EQ(parts.tokens, chosen);
  EXPECT_GT(chosen, 0);

  // Nothing chosen: 0, not 0/0.
  const MaskedBatch none{b.inputs, full({2, 12}, -100.0, DType::i64)};
  EXPECT_EQ(mlm_loss(bert, none).loss.item(), 0.0);
}

io::HfModelConfig tiny_mixtral(double aux_coef) {
  return io::parse_hf_config(json{{"model_type", "mixtral"},
                                  {"vocab_size", 24},
                                  {"hidden_size", 16},
                                  {"intermediate_size", 24},
                                  {"num_hidden_layers", 2},
                                  {"num_attention_heads", 2},
                                  {"num_key_value_heads", 1},
                                  {"max_position_embeddings", 32},
                                  {"num_local_experts", 4},
                                  {"num_experts_per_tok", 2},
                                  {"router_aux_loss_coef", aux_coef}},
                             "tiny mixtral");
}

TEST(ClmLoss, AddsTheMoeAuxiliaryLoss) {
  std::vector<int64_t> in, target;
  for (int i = 0; i < 2 * 8; ++i) {
    in.push_back((i * 5) % 24);
    target.push_back((i * 5 + 1) % 24);
  }
  const Tensor inputs = from_vector(in, {2, 8}), targets = from_vector(target, {2, 8});
  Generator g1(11), g2(11);
  auto small = models::make_causal_lm(tiny_mixtral(0.01), g1);
  auto large = models::make_causal_lm(tiny_mixtral(0.5), g2);  // same weights, 50x the coefficient
  const LossParts a = clm_loss(*small, inputs, targets), b = clm_loss(*large, inputs, targets);
  ASSERT_TRUE(a.aux_loss.defined());
  EXPECT_EQ(a.tokens, 16);
  // The cross-entropy does not depend on the coefficient; the loss is it plus coef * load balancing.
  EXPECT_EQ(a.lm_loss.item(), b.lm_loss.item());
  EXPECT_NEAR(a.loss.item(), a.lm_loss.item() + a.aux_loss.item(), 1e-6);
  EXPECT_NEAR(b.aux_loss.item(), 50.0 * a.aux_loss.item(), 1e-5);
  EXPECT_GT(a.aux_loss.item(), 0.0);
  const double expected_ce = ops::cross_entropy(small->forward(inputs), targets).item();
  EXPECT_NEAR(a.lm_loss.item(), expected_ce, 1e-6);
  EXPECT_NEAR(b.loss.item() - a.loss.item(), 49.0 * a.aux_loss.item(), 1e-5);
}

}  // namespace
}  // namespace ld::train
