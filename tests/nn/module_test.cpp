// nn::Module and the basic layers: names, state dicts, freezing, modes, tying, forwards, gradients.
#include <gtest/gtest.h>

#include <stdio.h>  // popen

#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

// The Python with torch (tests/CMakeLists.txt passes LIANDAN_PYTHON; Debian's python3 otherwise).
#ifdef LIANDAN_PYTHON
constexpr const char* kPython = LIANDAN_PYTHON;
#else
constexpr const char* kPython = "/usr/bin/python3";
#endif

namespace ld::test {
namespace {

using nn::Embedding;
using nn::LayerNorm;
using nn::Linear;
using nn::Module;
using nn::ModuleList;
using nn::RMSNorm;

constexpr int64_t kVocab = 11, kDim = 8;

struct Attention : Module {
  explicit Attention(Generator& g) {
    q_proj = register_module("q_proj", std::make_shared<Linear>(kDim, kDim, false, g));
    o_proj = register_module("o_proj", std::make_shared<Linear>(kDim, kDim, true, g));
  }
  std::shared_ptr<Linear> q_proj, o_proj;
};

struct Block : Module {
  explicit Block(Generator& g) {
    input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(kDim));
    self_attn = register_module("self_attn", std::make_shared<Attention>(g));
  }
  Tensor forward(const Tensor& x) const {
    Tensor h = self_attn->q_proj->forward(input_layernorm->forward(x));
    return ops::add(x, self_attn->o_proj->forward(ops::relu(h)));
  }
  std::shared_ptr<RMSNorm> input_layernorm;
  std::shared_ptr<Attention> self_attn;
};

struct Body : Module {
  Body(Generator& g, int64_t n_layers) {
    embed_tokens = register_module("embed_tokens", std::make_shared<Embedding>(kVocab, kDim, g));
    layers = register_module("layers", std::make_shared<ModuleList>());
    for (int64_t i = 0; i < n_layers; ++i) layers->push_back(std::make_shared<Block>(g));
    norm = register_module("norm", std::make_shared<LayerNorm>(kDim));
  }
  std::shared_ptr<Embedding> embed_tokens;
  std::shared_ptr<ModuleList> layers;
  std::shared_ptr<LayerNorm> norm;
};

// A 2-layer LLaMA-shaped toy with Hugging Face names; lm_head optionally tied to the embedding.
struct Toy : Module {
  Toy(uint64_t seed, bool tied) {
    Generator g(seed);
    model = register_module("model", std::make_shared<Body>(g, 2));
    lm_head = register_module("lm_head", std::make_shared<Linear>(kDim, kVocab, false, g));
    if (tied) lm_head->tie_weight(model->embed_tokens->weight);
  }
  Tensor forward(const Tensor& ids) const {
    Tensor h = model->embed_tokens->forward(ids);
    for (size_t i = 0; i < model->layers->size(); ++i) h = model->layers->at<Block>(i)->forward(h);
    return lm_head->forward(model->norm->forward(h));
  }
  std::shared_ptr<Body> model;
  std::shared_ptr<Linear> lm_head;
};

Tensor sample_ids() { return from_vector<int64_t>({1, 4, 7, 10, 0, 3}, {2, 3}); }

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, _] : m.named_parameters()) out.push_back(name);
  return out;
}

void expect_equal(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

TEST(NnModule, NamesFollowHuggingFaceInRegistrationOrder) {
  Toy toy(1, false);
  std::vector<std::string> expected = {
      "model.embed_tokens.weight",
      "model.layers.0.input_layernorm.weight",
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.o_proj.weight",
      "model.layers.0.self_attn.o_proj.bias",
      "model.layers.1.input_layernorm.weight",
      "model.layers.1.self_attn.q_proj.weight",
      "model.layers.1.self_attn.o_proj.weight",
      "model.layers.1.self_attn.o_proj.bias",
      "model.norm.weight",
      "model.norm.bias",
      "lm_head.weight",
  };
  EXPECT_EQ(names_of(toy), expected);
  EXPECT_EQ(toy.parameters().size(), expected.size());
  int64_t per_layer = kDim + 2 * kDim * kDim + kDim;
  EXPECT_EQ(toy.parameter_count(), kVocab * kDim + 2 * per_layer + 2 * kDim + kVocab * kDim);
  for (const auto& t : toy.parameters()) EXPECT_TRUE(t.requires_grad() && t.is_leaf());
}

// The same toy built in PyTorch: its named_parameters() order, state_dict() keys and parameter
// count are the reference for ours (tied and untied).
constexpr const char* kTorchToy = R"(
import sys
try:
    import torch
    from torch import nn
except ImportError:
    print("NO_TORCH"); sys.exit(0)
V, C = 11, 8
class RMSNorm(nn.Module):
    def __init__(s): super().__init__(); s.weight = nn.Parameter(torch.ones(C))
class Attention(nn.Module):
    def __init__(s): super().__init__(); s.q_proj = nn.Linear(C, C, bias=False); s.o_proj = nn.Linear(C, C)
class Block(nn.Module):
    def __init__(s): super().__init__(); s.input_layernorm = RMSNorm(); s.self_attn = Attention()
class Body(nn.Module):
    def __init__(s):
        super().__init__(); s.embed_tokens = nn.Embedding(V, C)
        s.layers = nn.ModuleList([Block(), Block()]); s.norm = nn.LayerNorm(C)
class Toy(nn.Module):
    def __init__(s, tied):
        super().__init__(); s.model = Body(); s.lm_head = nn.Linear(C, V, bias=False)
        if tied: s.lm_head.weight = s.model.embed_tokens.weight
for tied in (0, 1):
    m = Toy(tied)
    print("named", tied, " ".join(n for n, _ in m.named_parameters()))
    print("keys", tied, " ".join(sorted(m.state_dict().keys())))
    print("count", tied, sum(p.numel() for p in m.parameters()))
)";

std::string torch_toy_report() {
  TempDir dir("nn_torch");
  std::ofstream(dir / "toy.py") << kTorchToy;
  std::string command = std::string(kPython) + " " + (dir / "toy.py").string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (!pipe) return "";
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  EXPECT_EQ(::pclose(pipe), 0) << out;
  return out;
}

TEST(NnModule, NamesOrderAndCountsMatchPyTorch) {
  std::string report = torch_toy_report();
  ASSERT_EQ(report.find("NO_TORCH"), std::string::npos)
      << kPython << " has no torch: install python3-torch (apt-get install python3-torch)";
  for (bool tied : {false, true}) {
    Toy toy(1, tied);
    std::string t = tied ? "1" : "0", named = "named " + t, keys = "keys " + t;
    for (const auto& n : names_of(toy)) named += " " + n;
    for (const auto& [n, _] : toy.state_dict()) keys += " " + n;  // std::map: sorted like Python's
    std::string count = "count " + t + " " + std::to_string(toy.parameter_count());
    for (const std::string& line : {named, keys, count})
      EXPECT_NE(report.find(line + "\n"), std::string::npos) << "ours: " << line << "\ntorch:\n" << report;
  }
}

TEST(NnModule, StateDictSharesStorageAndRoundTripsIntoAFreshModel) {
  Toy a(1, false), b(2, false);
  Tensor ids = sample_ids();
  Tensor out_a = a.forward(ids);
  ASSERT_NE(out_a.to_vector<float>(), b.forward(ids).to_vector<float>());  // different seeds differ

  nn::StateDict sd = a.state_dict();
  EXPECT_EQ(sd.size(), 12u);
  EXPECT_EQ(sd.at("lm_head.weight").storage(), a.lm_head->weight.storage());  // shared, not copied

  Tensor b_weight_before = b.lm_head->weight;
  nn::LoadResult r = b.load_state_dict(sd);
  EXPECT_TRUE(r.missing.empty() && r.unexpected.empty());
  expect_equal(b.forward(ids), out_a);
  EXPECT_EQ(b.lm_head->weight.impl_ptr(), b_weight_before.impl_ptr());  // loaded in place
  EXPECT_NE(b.lm_head->weight.storage(), a.lm_head->weight.storage());   // copied, not aliased
}

TEST(NnModule, StrictLoadListsMissingAndUnexpectedNames) {
  Toy a(1, false), b(2, false);
  nn::StateDict sd = a.state_dict();
  sd.erase("model.norm.bias");
  sd.erase("lm_head.weight");
  sd["model.layers.2.mlp.weight"] = zeros({2});
  Tensor before = b.model->embed_tokens->weight.clone();

  std::string msg = error_message([&] { b.load_state_dict(sd); });
  expect_mentions(msg, {"2 missing keys", "model.norm.bias", "lm_head.weight", "1 unexpected key",
                        "model.layers.2.mlp.weight"});
  expect_equal(b.model->embed_tokens->weight, before);  // nothing written on an error

  nn::LoadResult r = b.load_state_dict(sd, /*strict=*/false);
  EXPECT_EQ(r.missing, (std::vector<std::string>{"model.norm.bias", "lm_head.weight"}));
  EXPECT_EQ(r.unexpected, (std::vector<std::string>{"model.layers.2.mlp.weight"}));
  expect_equal(b.model->embed_tokens->weight, a.model->embed_tokens->weight);  // the rest loaded
}

TEST(NnModule, StrictLoadShowsOnlyTheFirstFewNames) {
  Toy b(2, false);
  std::string msg = error_message([&] { b.load_state_dict({}); });
  expect_mentions(msg, {"12 missing keys", "model.embed_tokens.weight", "(7 more)"});
  EXPECT_EQ(msg.find("lm_head.weight"), std::string::npos) << msg;
}

TEST(NnModule, ShapeAndDtypeMismatchesNameTheParameterAndBoth) {
  Toy b(2, false);
  nn::StateDict sd = b.state_dict();
  sd["model.layers.1.self_attn.q_proj.weight"] = zeros({kDim, kDim + 1});
  expect_mentions(error_message([&] { b.load_state_dict(sd); }),
                  {"model.layers.1.self_attn.q_proj.weight", "[8, 8]", "[8, 9]"});
  sd = b.state_dict();
  sd["model.norm.weight"] = zeros({kDim}, DType::bf16);
  expect_mentions(error_message([&] { b.load_state_dict(sd); }), {"model.norm.weight", "f32", "bf16"});
}

TEST(NnModule, FreezeByPatternKeepsGradientsOffFrozenParameters) {
  Toy toy(3, false);
  EXPECT_EQ(toy.freeze("*.q_proj.*"), 2);
  EXPECT_EQ(toy.freeze("model.layers.1*"), 4);  // q_proj of layer 1 already frozen, still matched
  EXPECT_EQ(toy.freeze("model.nor?.bias"), 1);
  expect_mentions(error_message([&] { toy.freeze("*.k_proj.*"); }), {"*.k_proj.*", "matches no parameter"});

  ops::sum(toy.forward(sample_ids())).backward();
  for (const auto& [name, t] : toy.named_parameters()) {
    bool frozen = name.find("q_proj") != std::string::npos || name.rfind("model.layers.1", 0) == 0 ||
                  name == "model.norm.bias";
    EXPECT_EQ(t.requires_grad(), !frozen) << name;
    EXPECT_EQ(t.grad().defined(), !frozen) << name;
  }

  EXPECT_EQ(toy.unfreeze("model.layers.1.self_attn.*"), 3);
  EXPECT_TRUE(toy.model->layers->at<Block>(1)->self_attn->q_proj->weight.requires_grad());
  EXPECT_FALSE(toy.model->layers->at<Block>(1)->input_layernorm->weight.requires_grad());
  toy.zero_grad();
  for (const auto& t : toy.parameters()) EXPECT_FALSE(t.grad().defined());
}

TEST(NnModule, GlobMatch) {
  EXPECT_TRUE(nn::glob_match("*", "a.b.c"));
  EXPECT_TRUE(nn::glob_match("a.*.c", "a.b.x.c"));
  EXPECT_TRUE(nn::glob_match("a.?.c", "a.b.c"));
  EXPECT_FALSE(nn::glob_match("a.?.c", "a.bb.c"));
  EXPECT_FALSE(nn::glob_match("model.layers.1*", "model.layers.0.x"));
  EXPECT_TRUE(nn::glob_match("*weight", "weight"));
  EXPECT_FALSE(nn::glob_match("*.weight", "weight"));
}

TEST(NnModule, TrainAndEvalRecurse) {
  Toy toy(4, false);
  EXPECT_TRUE(toy.is_training());
  toy.eval();
  EXPECT_FALSE(toy.is_training());
  EXPECT_FALSE(toy.model->layers->is_training());
  EXPECT_FALSE(toy.model->layers->at<Block>(1)->self_attn->o_proj->is_training());
  toy.model->layers->train();
  EXPECT_FALSE(toy.model->is_training());
  EXPECT_TRUE(toy.model->layers->at<Block>(0)->input_layernorm->is_training());
  EXPECT_FALSE(toy.lm_head->is_training());
}

TEST(NnModule, TiedWeightsCountOnceButAppearUnderBothNames) {
  Toy tied(5, true), untied(5, false);
  EXPECT_EQ(tied.parameter_count(), untied.parameter_count() - kVocab * kDim);
  EXPECT_EQ(tied.parameters().size(), untied.parameters().size() - 1);
  EXPECT_EQ(names_of(tied).back(), "model.norm.bias");  // lm_head.weight is the embedding's alias
  nn::StateDict sd = tied.state_dict();
  ASSERT_EQ(sd.size(), 12u);
  EXPECT_EQ(sd.at("lm_head.weight").impl_ptr(), sd.at("model.embed_tokens.weight").impl_ptr());

  // A checkpoint that stores the tied tensor under one name loads strictly.
  nn::StateDict only_embed = untied.state_dict();
  only_embed.erase("lm_head.weight");
  tied.load_state_dict(only_embed);
  expect_equal(tied.lm_head->weight, untied.model->embed_tokens->weight);

  // Gradients from both uses accumulate into the one tensor; freezing by either name reaches it.
  ops::sum(tied.forward(sample_ids())).backward();
  EXPECT_TRUE(tied.model->embed_tokens->weight.grad().defined());
  EXPECT_EQ(tied.freeze("lm_head.*"), 1);
  EXPECT_FALSE(tied.model->embed_tokens->weight.requires_grad());
}

TEST(NnModule, RegistrationErrors) {
  struct Bad : Module {
    void add(const std::string& name) { register_parameter(name, zeros({1})); }
  } bad;
  bad.add("w");
  expect_mentions(error_message([&] { bad.add("w"); }), {"'w'", "twice"});
  expect_mentions(error_message([&] { bad.add("a.b"); }), {"'a.b'"});
  Generator g(0);
  Linear lin(4, 3, false, g);
  expect_mentions(error_message([&] { lin.tie_weight(zeros({4, 3})); }), {"weight", "[3, 4]"});
}

TEST(NnLayers, ForwardsEqualTheOpsTheyWrap) {
  Generator g(7), gx(8);
  Tensor x = randn({2, 3, 5}, &gx);

  Linear lin(5, 4, true, g);
  EXPECT_EQ(lin.weight.shape(), (Shape{4, 5}));
  lin.bias.copy_(randn({4}, &gx));
  expect_equal(lin.forward(x), ops::linear(x, lin.weight, lin.bias));
  Linear no_bias(5, 4, false, g);
  EXPECT_FALSE(no_bias.bias.defined());
  EXPECT_EQ(names_of(no_bias), (std::vector<std::string>{"weight"}));
  expect_equal(no_bias.forward(x), ops::linear(x, no_bias.weight));

  Embedding emb(kVocab, 5, g);
  expect_equal(emb.forward(sample_ids()), ops::embedding(sample_ids(), emb.weight));

  LayerNorm ln(5, 1e-3);
  ln.weight.copy_(randn({5}, &gx));
  ln.bias.copy_(randn({5}, &gx));
  expect_equal(ln.forward(x), ops::layernorm(x, ln.weight, ln.bias, 1e-3));
  LayerNorm ln_nobias(5, 1e-5, false);
  EXPECT_EQ(names_of(ln_nobias), (std::vector<std::string>{"weight"}));
  expect_equal(ln_nobias.forward(x), ops::layernorm(x, ln_nobias.weight, Tensor(), 1e-5));

  RMSNorm rms(5, 1e-4);
  rms.weight.copy_(randn({5}, &gx));
  expect_equal(rms.forward(x), ops::rmsnorm(x, rms.weight, 1e-4));
}

TEST(NnLayers, InitStatistics) {
  Generator g(9);
  Linear lin(256, 128, true, g);
  std::vector<float> w = lin.weight.to_vector<float>();
  double sum = 0, sq = 0;
  for (float v : w) {
    sum += v;
    sq += double(v) * v;
  }
  double mean = sum / double(w.size()), stddev = std::sqrt(sq / double(w.size()) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.001);
  EXPECT_NEAR(stddev, 0.02, 0.0005);
  for (float v : lin.bias.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  LayerNorm ln(6);
  for (float v : ln.weight.to_vector<float>()) EXPECT_EQ(v, 1.0f);
  for (float v : ln.bias.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  for (float v : RMSNorm(6).weight.to_vector<float>()) EXPECT_EQ(v, 1.0f);
}

TEST(NnLayers, LinearGradientReachesWeightAndBias) {
  // y = x W^T + b, loss = sum(y * c): dW = c^T x, db = sum over rows of c (checked by hand below).
  Generator g(11), gx(12);
  Linear lin(3, 2, true, g);
  Tensor x = randn({4, 3}, &gx), c = randn({4, 2}, &gx);
  ops::sum(ops::mul(lin.forward(x), c)).backward();
  ASSERT_TRUE(lin.weight.grad().defined() && lin.bias.grad().defined());
  std::vector<float> xv = x.to_vector<float>(), cv = c.to_vector<float>();
  std::vector<float> dw = lin.weight.grad().to_vector<float>(), db = lin.bias.grad().to_vector<float>();
  for (int o = 0; o < 2; ++o) {
    double b_ref = 0;
    for (int r = 0; r < 4; ++r) b_ref += cv[size_t(r * 2 + o)];
    EXPECT_NEAR(db[size_t(o)], b_ref, 1e-5);
    for (int i = 0; i < 3; ++i) {
      double w_ref = 0;
      for (int r = 0; r < 4; ++r) w_ref += double(cv[size_t(r * 2 + o)]) * xv[size_t(r * 3 + i)];
      EXPECT_NEAR(dw[size_t(o * 3 + i)], w_ref, 1e-5);
    }
  }
}

}  // namespace
}  // namespace ld::test
