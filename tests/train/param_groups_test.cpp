#include "train/param_groups.hpp"

#include <gtest/gtest.h>

#include <set>

#include "core/rng.hpp"
#include "test_util.hpp"

using namespace ld;

namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

Tensor param(const Shape& shape) { return full(shape, 1.0).set_requires_grad(true); }

// Which names landed in each group (a tensor under several names is looked up by identity).
std::set<std::string> names_in(const train::ParamGroup& group, const Named& named) {
  std::set<std::string> out;
  for (const Tensor& t : group.params)
    for (const auto& [name, p] : named)
      if (p.impl_ptr() == t.impl_ptr()) out.insert(name);
  return out;
}

}  // namespace

TEST(ParamGroups, DecaysMatricesButNotNormsBiasesOrEmbeddings) {
  Tensor wte = param({10, 4});
  const Named named = {
      // lm_head tied to wte, named first: still no decay, and listed once.
      {"lm_head.weight", wte},
      {"transformer.wte.weight", wte},
      {"transformer.wpe.weight", param({8, 4})},
      {"transformer.h.0.ln_1.weight", param({4})},
      {"transformer.h.0.ln_1.bias", param({4})},
      {"transformer.h.0.attn.c_attn.weight", param({4, 12})},
      {"transformer.h.0.attn.c_attn.bias", param({12})},
      {"model.embed_tokens.weight", param({10, 4})},
      {"model.layers.0.self_attn.q_proj.weight", param({4, 4})},
      {"model.norm.weight", param({4})},
      {"bert.embeddings.word_embeddings.weight", param({10, 4})},
      {"bert.embeddings.position_embeddings.weight", param({8, 4})},
      {"bert.embeddings.token_type_embeddings.weight", param({2, 4})},
      {"bert.embeddings.LayerNorm.weight", param({4})},
      {"bert.encoder.layer.0.attention.self.query.weight", param({4, 4})},
  };
  std::vector<train::ParamGroup> groups = train::make_param_groups(named, {.weight_decay = 0.05f});
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].weight_decay, 0.05f);
  EXPECT_EQ(groups[1].weight_decay, 0.0f);
  EXPECT_EQ(names_in(groups[0], named),
            (std::set<std::string>{"transformer.h.0.attn.c_attn.weight", "model.layers.0.self_attn.q_proj.weight",
                                   "bert.encoder.layer.0.attention.self.query.weight"}));
  EXPECT_EQ(groups[0].params.size() + groups[1].params.size(), named.size() - 1);  // the tied one once
  EXPECT_EQ(names_in(groups[1], named).count("lm_head.weight"), 1u);
}

TEST(ParamGroups, PatternsAreConfigurableAndFrozenParametersAreLeftOut) {
  Named named = {{"transformer.wte.weight", param({10, 4})},
                       {"transformer.h.0.mlp.c_fc.weight", param({4, 16})},
                       {"transformer.h.0.mlp.c_proj.weight", param({16, 4})},
                       {"transformer.h.0.mlp.c_fc.bias", param({16})}};
  named[2].second.set_requires_grad(false);
  // No name patterns: embeddings are decayed (nanoGPT's newer convention); 1-D tensors still are not.
  std::vector<train::ParamGroup> groups =
      train::make_param_groups(named, {.weight_decay = 0.1f, .no_decay_patterns = {}, .include_frozen = false});
  EXPECT_EQ(names_in(groups[0], named), (std::set<std::string>{"transformer.wte.weight", "transformer.h.0.mlp.c_fc.weight"}));
  EXPECT_EQ(names_in(groups[1], named), (std::set<std::string>{"transformer.h.0.mlp.c_fc.bias"}));
  groups = train::make_param_groups(named, {.weight_decay = 0.1f, .no_decay_patterns = {"*.mlp.*"}, .include_frozen = true});
  EXPECT_EQ(names_in(groups[0], named), (std::set<std::string>{"transformer.wte.weight"}));
  EXPECT_EQ(groups[1].params.size(), 3u);
}

// The groups drive AdamW's per-parameter decay in its one fused pass: with zero gradients the Adam
// update is 0, so decayed parameters shrink by exactly (1 - lr * wd) and the others stay put.
TEST(ParamGroups, AdamWDecaysOnlyTheDecayGroup) {
  const Named named = {{"model.embed_tokens.weight", param({3, 2})},
                       {"model.layers.0.mlp.up_proj.weight", param({2, 3})},
                       {"model.layers.0.input_layernorm.weight", param({2})}};
  train::AdamW adamw(train::make_param_groups(named, {}), {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                                           .weight_decay = 0.0f});
  for (const auto& [name, p] : named) {
    Tensor q = p;
    q.set_grad(zeros(p.shape()));
  }
  adamw.step();
  EXPECT_EQ(named[0].second.to_vector<float>(), std::vector<float>(6, 1.0f));
  EXPECT_EQ(named[2].second.to_vector<float>(), std::vector<float>(2, 1.0f));
  for (float x : named[1].second.to_vector<float>()) EXPECT_FLOAT_EQ(x, 1.0f - 0.01f * 0.1f);
}
