// Activation checkpointing in the models (CausalLM::set_checkpointing, BertEncoder::checkpoint_every):
// the loss and every parameter's gradient are the same with every block, every second block or no
// block recomputed, for GPT-2, LLaMA, Mixtral (whose aux loss flows out of the checkpointed blocks)
// and BERT; a forward without grad or with a KV cache is untouched.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/allocator.hpp"
#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/objectives.hpp"

namespace ld::models {
namespace {

using nlohmann::json;

json base(const std::string& type) {
  json j = {{"model_type", type}, {"vocab_size", 20}, {"num_hidden_layers", 3}, {"num_attention_heads", 2}};
  if (type == "gpt2") return {{"model_type", "gpt2"}, {"vocab_size", 20}, {"n_layer", 3}, {"n_head", 2},
                              {"n_embd", 16}, {"n_positions", 16}};
  j["hidden_size"] = 16;
  j["intermediate_size"] = 24;
  j["max_position_embeddings"] = 16;
  if (type == "mixtral") {
    j["num_key_value_heads"] = 1;
    j["num_local_experts"] = 3;
    j["num_experts_per_tok"] = 2;
    j["router_aux_loss_coef"] = 0.1;
  }
  return j;
}

struct Result {
  double loss = 0;
  std::map<std::string, std::vector<float>> grads;
};

Tensor ids(int shift) {
  std::vector<int64_t> v;
  for (int i = 0; i < 2 * 10; ++i) v.push_back((i * 7 + 3 + shift) % 20);
  return from_vector(v, {2, 10});
}

Result collect(const nn::Module& model, const Tensor& loss) {
  loss.backward();
  Result r;
  r.loss = loss.item();
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_TRUE(p.grad().defined()) << name;
    if (p.grad().defined()) r.grads[name] = p.grad().to_vector<float>();
  }
  return r;
}

Result causal_run(const std::string& type, int64_t every_k) {
  Generator gen(5);
  auto lm = make_causal_lm(io::parse_hf_config(base(type), type), gen);
  lm->set_checkpointing(every_k);
  const train::LossParts parts = train::clm_loss(*lm, ids(0), ids(1));
  EXPECT_EQ(parts.aux_loss.defined(), type == "mixtral");
  return collect(*lm, parts.loss);
}

Result bert_run(int64_t every_k) {
  Generator gen(5);
  json j = base("bert");
  j["architectures"] = {"BertForMaskedLM"};
  BertForMaskedLM bert(io::parse_hf_config(j, "bert"), gen);
  bert.bert->encoder->checkpoint_every = every_k;
  train::MlmMasking m;
  m.probability = 0.5;
  m.mask_token_id = 1;
  m.vocab_size = 20;
  return collect(bert, train::mlm_loss(bert, train::mask_tokens(ids(0), m, 0)).loss);
}

void expect_same(const Result& a, const Result& b, const std::string& what) {
  EXPECT_NEAR(a.loss, b.loss, 1e-6) << what;
  ASSERT_EQ(a.grads.size(), b.grads.size()) << what;
  for (const auto& [name, g] : a.grads) {
    const std::vector<float>& h = b.grads.at(name);
    ASSERT_EQ(g.size(), h.size()) << what << " " << name;
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, double(std::abs(g[i] - h[i])));
    EXPECT_LE(worst, 1e-6) << what << " " << name;
  }
}

class CausalCheckpointing : public ::testing::TestWithParam<std::string> {};

TEST_P(CausalCheckpointing, GivesTheSameLossAndGradients) {
  const Result plain = causal_run(GetParam(), 0);
  expect_same(plain, causal_run(GetParam(), 1), GetParam() + " every block");
  expect_same(plain, causal_run(GetParam(), 2), GetParam() + " every 2nd block");
}

INSTANTIATE_TEST_SUITE_P(Models, CausalCheckpointing, ::testing::Values("gpt2", "llama", "mixtral"));

TEST(BertCheckpointing, GivesTheSameLossAndGradients) {
  const Result plain = bert_run(0);
  expect_same(plain, bert_run(1), "bert every layer");
  expect_same(plain, bert_run(2), "bert every 2nd layer");
}

// What the graph holds after the forward (the activations kept for backward) shrinks with
// checkpointing: every block < every 2nd block < none.
TEST(CausalCheckpointing, KeepsLessForBackward) {
  json j = base("llama");
  j["max_position_embeddings"] = 64;
  j["num_hidden_layers"] = 4;
  Generator gen(5);
  auto lm = make_causal_lm(io::parse_hf_config(j, "llama"), gen);
  std::vector<int64_t> v;
  for (int i = 0; i < 4 * 64; ++i) v.push_back((i * 7 + 3) % 20);
  const Tensor in = from_vector(v, {4, 64});
  auto held = [&](int64_t every_k) {
    lm->set_checkpointing(every_k);
    const size_t before = CachingHostAllocator::instance().stats().bytes_in_use;
    const Tensor loss = ops::sum(lm->forward(in));
    return CachingHostAllocator::instance().stats().bytes_in_use - before;
  };
  const size_t none = held(0), every_2nd = held(2), every = held(1);
  EXPECT_LT(every, every_2nd);
  EXPECT_LT(every_2nd, none);
  EXPECT_LT(double(every), 0.6 * double(none));
}

TEST(CausalCheckpointing, LeavesInferenceAlone) {
  Generator gen(5);
  auto lm = make_causal_lm(io::parse_hf_config(base("llama"), "llama"), gen);
  const Tensor reference = [&] {
    autograd::NoGradGuard no_grad;
    return lm->forward(ids(0));
  }();
  lm->set_checkpointing(1);
  autograd::NoGradGuard no_grad;
  EXPECT_EQ(test::max_abs_diff(lm->forward(ids(0)), reference), 0.0);
  KvCache cache = lm->make_cache(2, 16);
  EXPECT_LE(test::max_abs_diff(lm->forward(ids(0), &cache), reference), 1e-5);
  test::expect_mentions(test::error_message([&] { lm->set_checkpointing(-1); }), {"every_k", "-1"});
}

}  // namespace
}  // namespace ld::models
