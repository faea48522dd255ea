// Gpt2LMHeadModel (the nn::Module GPT-2) against the functional stack models::forward_logits on the
// same parameters, against a float64 PyTorch GPT-2 (gpt2_ref.py) on folders it writes in Hugging
// Face's layouts (n_inner, erf GELU, untied lm_head, the Hub's unprefixed names with attn.bias
// buffers) and on the folders save_pretrained writes, the KV cache and left-padded batches against
// recomputation, clear errors, finite-difference gradients, and the MoE option.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "models/causal_lm.hpp"
#include "models/gpt2.hpp"
#include "models/kv_cache.hpp"
#include "models/tiny_transformer.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

#ifndef LIANDAN_PYTHON
#error "gpt2_test needs LIANDAN_PYTHON and LIANDAN_SOURCE_DIR"
#endif

namespace ld::models {
namespace {

using test::max_abs_diff;

namespace fs = std::filesystem;

const std::string kRefScript = std::string(LIANDAN_SOURCE_DIR) + "/tests/models/gpt2_ref.py";

StackConfig small_config() {
  StackConfig c;
  c.kind = StackKind::gpt2;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_kv_head = 4;
  c.n_embd = 32;
  c.vocab_size = 61;
  c.n_positions = 24;
  c.intermediate_size = 4 * 32;
  c.norm_eps = 1e-5;
  return c;
}

// Large enough weights that logits are far from ties; LayerNorm weights != 1 and biases != 0.
Params random_params(const StackConfig& c, uint64_t seed, double std = 0.2) {
  Generator gen(seed);
  return init_params(c, gen, InitOptions{.std = std, .norm_and_bias_jitter = 0.2});
}

std::unique_ptr<Gpt2LMHeadModel> model_with(const StackConfig& c, const Params& params) {
  Generator gen(123);
  auto lm = std::make_unique<Gpt2LMHeadModel>(io::make_hf_config(c, /*tie_word_embeddings=*/true), gen);
  lm->load_state_dict(nn::StateDict(params.begin(), params.end()), /*strict=*/true);
  return lm;
}

Tensor random_ids(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> v(static_cast<size_t>(B * T));
  uint64_t s = seed;
  for (auto& x : v) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(vocab));
  }
  return from_vector(v, {B, T});
}

std::vector<float> floats(const Tensor& t) { return t.contiguous().to_vector<float>(); }

// max |ours - ref| / max |ref| over the rows (b, t) whose attention_mask is 1; logits [B, T, V].
double relative_error(const Tensor& ours, const Tensor& ref, const Tensor& mask) {
  EXPECT_EQ(ours.shape(), ref.shape());
  const int64_t B = ref.size(0), T = ref.size(1), V = ref.size(2);
  const std::vector<float> x = floats(ours), y = floats(ref);
  const std::vector<int64_t> keep = mask.to(DType::i64).contiguous().to_vector<int64_t>();
  double diff = 0, scale = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      if (keep[size_t(b * T + t)] == 0) continue;
      for (int64_t v = 0; v < V; ++v) {
        const size_t i = size_t((b * T + t) * V + v);
        diff = std::max(diff, double(std::abs(x[i] - y[i])));
        scale = std::max(scale, double(std::abs(y[i])));
      }
    }
  EXPECT_GT(scale, 0.1);  // the reference is not degenerate
  return diff / scale;
}

bool have_torch() {
  static const bool found = std::system(LIANDAN_PYTHON " -c \"import torch\" >/dev/null 2>&1") == 0;
  return found;
}

#define SKIP_WITHOUT_TORCH() \
  if (!have_torch()) GTEST_SKIP() << "needs PyTorch for the reference: apt-get install python3-torch"

// Runs gpt2_ref.py with `args`; false (and a failure naming the command) when it fails.
bool run_reference(const std::string& args) {
  const std::string cmd = std::string(LIANDAN_PYTHON) + " \"" + kRefScript + "\" " + args;
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(status, 0) << cmd;
  return status == 0;
}

std::string quoted(const fs::path& p) { return "\"" + p.string() + "\""; }

// What gpt2_ref.py writes next to a folder: ids, attention_mask, position_ids, logits.
struct Reference {
  Tensor ids, mask, positions, logits;
};

Reference read_reference(const fs::path& path) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  return {f.get("ids").contiguous(), f.get("attention_mask").contiguous(), f.get("position_ids").contiguous(),
          f.get("logits").contiguous()};
}

// The batch with its left-padded row, and row 0 alone without a mask (positions 0..T-1).
void expect_matches_reference(const CausalLM& lm, const Reference& ref) {
  const Tensor logits = lm.forward(ref.ids, nullptr, ref.mask);
  EXPECT_LE(relative_error(logits, ref.logits, ref.mask), 1e-4);
  // the padded row really is padded, and liandan's positions are transformers' position_ids
  EXPECT_EQ(ref.mask.to_vector<int64_t>()[size_t(ref.ids.size(1))], 0);
  const AttentionContext ctx = make_attention_context({.ids = ref.ids, .cache = nullptr, .attention_mask = ref.mask},
                                                      lm.config(), 0);
  EXPECT_EQ(ctx.positions.to(DType::i64).contiguous().to_vector<int64_t>(), ref.positions.to_vector<int64_t>());
  const Tensor row0 = ref.ids.narrow(0, 0, 1).contiguous();
  const Tensor ones_mask = ref.mask.narrow(0, 0, 1).contiguous();
  EXPECT_LE(relative_error(lm.forward(row0), ref.logits.narrow(0, 0, 1).contiguous(), ones_mask), 1e-4);
}

// --- the functional stack

TEST(Gpt2, LogitsEqualTheFunctionalStack) {
  const StackConfig c = small_config();
  const Params params = random_params(c, 7);
  auto lm = model_with(c, params);
  const Tensor ids = random_ids(2, 9, c.vocab_size, 3);
  const Tensor ours = lm->forward(ids);
  EXPECT_EQ(ours.shape(), (Shape{2, 9, c.vocab_size}));
  EXPECT_LE(max_abs_diff(ours, forward_logits(c, params, ids)), 1e-5f);
  EXPECT_GT(max_abs_diff(ours, ops::scale(ours, 0.0)), 0.5f);  // not a degenerate comparison
  // i32 ids too
  EXPECT_LE(max_abs_diff(lm->forward(ids.to(DType::i32)), ours), 0.0f);
  // last_position_only: the last row of the full logits
  const LmOutput last = lm->run({.ids = ids, .cache = nullptr, .attention_mask = Tensor(), .last_position_only = true});
  EXPECT_EQ(last.logits.shape(), (Shape{2, 1, c.vocab_size}));
  EXPECT_LE(max_abs_diff(last.logits, ours.narrow(1, 8, 1)), 1e-6f);
  EXPECT_FALSE(last.aux_loss.defined());
}

TEST(Gpt2, ParameterNamesAreHuggingFaces) {
  const StackConfig c = small_config();
  Generator gen(1);
  const io::HfModelConfig hf = io::make_hf_config(c, true);
  Gpt2LMHeadModel lm(hf, gen);
  Generator gen2(1);
  const Params reference = init_params(c, gen2);
  std::set<std::string> names, expected;
  int64_t elements = 0;
  for (const auto& [name, t] : lm.named_parameters()) {
    names.insert(name);
    ASSERT_TRUE(reference.count(name)) << name;
    EXPECT_EQ(t.shape(), reference.at(name).shape()) << name;
  }
  for (const auto& [name, t] : reference) {
    expected.insert(name);
    elements += t.numel();
  }
  EXPECT_EQ(names.size(), lm.named_parameters().size());
  EXPECT_EQ(names, expected);
  EXPECT_EQ(lm.parameter_count(), elements);
  EXPECT_EQ(lm.parameter_count(), io::expected_parameter_count(hf));
  EXPECT_EQ(lm.transformer->block(2).attn->c_attn->weight.shape(), (Shape{32, 96}));  // Conv1D: [in, out]
  // lm_head is wte: an alias in the state dict, not a parameter of its own
  const nn::StateDict state = lm.state_dict();
  ASSERT_TRUE(state.count("lm_head.weight"));
  EXPECT_EQ(state.at("lm_head.weight").data<float>(), state.at("transformer.wte.weight").data<float>());
}

TEST(Gpt2, UntiedLmHeadIsAParameterAndNInnerSetsTheMlpWidth) {
  StackConfig c = small_config();
  io::HfModelConfig hf = io::make_hf_config(c, false);
  hf.stack.intermediate_size = 40;
  Generator gen(3);
  Gpt2LMHeadModel lm(hf, gen);
  std::set<std::string> names;
  for (const auto& [name, t] : lm.named_parameters()) names.insert(name);
  EXPECT_TRUE(names.count("lm_head.weight"));
  EXPECT_EQ(lm.transformer->block(0).mlp->c_fc->weight.shape(), (Shape{32, 40}));
  EXPECT_EQ(lm.transformer->block(0).mlp->c_proj->weight.shape(), (Shape{40, 32}));
  EXPECT_EQ(lm.parameter_count(), io::expected_parameter_count(hf));
}

TEST(Gpt2, NormalizeCheckpointAddsThePrefixAndDropsBuffers) {
  Generator gen(1);
  Gpt2LMHeadModel lm(io::make_hf_config(small_config(), true), gen);
  nn::StateDict hub{{"wte.weight", zeros({1})},
                    {"h.0.attn.bias", zeros({1})},
                    {"h.0.attn.masked_bias", zeros({1})},
                    {"h.0.attn.c_attn.bias", zeros({1})},
                    {"transformer.h.1.attn.bias", zeros({1})},
                    {"transformer.h.1.ln_1.bias", zeros({1})},
                    {"lm_head.weight", zeros({1})}};
  std::set<std::string> keys;
  for (const auto& [name, t] : lm.normalize_checkpoint(hub)) keys.insert(name);
  EXPECT_EQ(keys, (std::set<std::string>{"transformer.wte.weight", "transformer.h.0.attn.c_attn.bias",
                                         "transformer.h.1.ln_1.bias", "lm_head.weight"}));
}

// --- the PyTorch reference

class Gpt2Reference : public ::testing::TestWithParam<const char*> {};

TEST_P(Gpt2Reference, LoadedFolderMatchesPyTorch) {
  SKIP_WITHOUT_TORCH();
  const std::string variant = GetParam();
  test::TempDir tmp("gpt2_ref_" + variant);
  const fs::path dir = tmp / "hf", ref = tmp / "ref.safetensors";
  ASSERT_TRUE(run_reference("make " + variant + " " + quoted(dir) + " " + quoted(ref)));
  auto lm = load_causal_lm(dir);
  ASSERT_NE(dynamic_cast<const Gpt2LMHeadModel*>(lm.get()), nullptr);
  EXPECT_EQ(lm->parameter_count(), io::expected_parameter_count(lm->hf_config()));
  EXPECT_EQ(lm->hf_config().tie_word_embeddings, variant != "untied");
  EXPECT_EQ(lm->config().intermediate_size, variant == "n_inner" ? 40 : 4 * lm->config().n_embd);
  EXPECT_EQ(io::SafetensorsFile::open(dir / "model.safetensors").contains("h.0.attn.bias"), variant == "hub");
  expect_matches_reference(*lm, read_reference(ref));
}

INSTANTIATE_TEST_SUITE_P(Gpt2, Gpt2Reference, ::testing::Values("base", "n_inner", "gelu", "untied", "hub"),
                         [](const ::testing::TestParamInfo<const char*>& p) { return std::string(p.param); });

TEST(Gpt2RoundTrip, SavePretrainedReloadsBitIdenticallyAndPyTorchReadsIt) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const StackConfig c = small_config();
    io::HfModelConfig hf = io::make_hf_config(c, tied);
    hf.hidden_act = "gelu";
    Generator gen(5);
    Gpt2LMHeadModel original(hf, gen);
    // jittered norms and biases, so a LayerNorm bias lost on the way would show
    const Params params = random_params(c, 9);
    original.load_state_dict(nn::StateDict(params.begin(), params.end()), /*strict=*/false);
    test::TempDir tmp("gpt2_roundtrip");
    const fs::path dir = tmp / "hf";
    save_pretrained(original, original.hf_config(), dir);
    EXPECT_EQ(io::SafetensorsFile::open(dir / "model.safetensors").contains("lm_head.weight"), !tied);
    auto loaded = load_causal_lm(dir);
    EXPECT_EQ(loaded->hf_config().hidden_act, "gelu");
    EXPECT_EQ(loaded->hf_config().tie_word_embeddings, tied);
    const Tensor ids = random_ids(2, 11, c.vocab_size, 4);
    EXPECT_EQ(floats(loaded->forward(ids)), floats(original.forward(ids)));

    if (!have_torch()) continue;
    const fs::path ref = tmp / "ref.safetensors";
    ASSERT_TRUE(run_reference("logits " + quoted(dir) + " " + quoted(ref)));
    expect_matches_reference(*loaded, read_reference(ref));
  }
}

// --- KV cache

Tensor last(const Tensor& logits) { return logits.narrow(1, logits.size(1) - 1, 1); }
std::vector<int64_t> argmax_last(const Tensor& logits) {
  return ops::argmax(last(logits), -1).contiguous().to_vector<int64_t>();
}

struct Greedy {
  std::vector<std::vector<int64_t>> tokens;  // per step, one per batch row
  std::vector<Tensor> logits;                // per step, [B, 1, V]
};

Greedy greedy_with_cache(const CausalLM& lm, const Tensor& prompt, int64_t steps, int64_t max_len) {
  KvCache cache = lm.make_cache(prompt.size(0), max_len);
  Greedy g;
  Tensor logits = lm.forward(prompt, &cache);
  for (int64_t s = 0; s < steps; ++s) {
    g.logits.push_back(last(logits).contiguous());
    g.tokens.push_back(argmax_last(logits));
    if (s + 1 < steps) logits = lm.forward(from_vector(g.tokens.back(), {prompt.size(0), 1}), &cache);
  }
  EXPECT_EQ(cache.length(), prompt.size(1) + steps - 1);
  return g;
}

Greedy greedy_recompute(const CausalLM& lm, const Tensor& prompt, int64_t steps) {
  Greedy g;
  Tensor ids = prompt;
  for (int64_t s = 0; s < steps; ++s) {
    Tensor logits = lm.forward(ids);
    g.logits.push_back(last(logits).contiguous());
    g.tokens.push_back(argmax_last(logits));
    ids = ops::concat({ids, from_vector(g.tokens.back(), {prompt.size(0), 1})}, 1);
  }
  return g;
}

TEST(Gpt2KvCache, GreedyDecodingEqualsRecomputing) {
  const StackConfig c = small_config();
  auto lm = model_with(c, random_params(c, 11, 0.3));
  for (int64_t batch : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Tensor prompt = random_ids(batch, 5, c.vocab_size, 17);
    const Greedy cached = greedy_with_cache(*lm, prompt, 12, c.n_positions);
    const Greedy full = greedy_recompute(*lm, prompt, 12);
    EXPECT_EQ(cached.tokens, full.tokens);
    for (size_t s = 0; s < full.logits.size(); ++s)
      EXPECT_LE(max_abs_diff(cached.logits[s], full.logits[s]), 1e-4f) << "step " << s;
    std::set<int64_t> distinct;  // the decoded tokens are not all one token (the comparison would be weak)
    for (const auto& t : full.tokens) distinct.insert(t.begin(), t.end());
    EXPECT_GT(distinct.size(), 2u);
  }
}

TEST(Gpt2KvCache, ChunkedPrefillEqualsFullForward) {
  const StackConfig c = small_config();
  auto lm = model_with(c, random_params(c, 5));
  const Tensor ids = random_ids(2, 8, c.vocab_size, 9);
  const Tensor full = lm->forward(ids);
  KvCache cache = lm->make_cache(2, 8);
  std::vector<Tensor> parts;
  for (auto [start, len] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 1}, {4, 4}})
    parts.push_back(lm->forward(ids.narrow(1, start, len).contiguous(), &cache));
  EXPECT_LE(max_abs_diff(ops::concat(parts, 1), full), 1e-4f);
  EXPECT_EQ(cache.length(), 8);
}

TEST(Gpt2KvCache, BatchOfUnevenPromptsEqualsEachPromptAlone) {
  const StackConfig c = small_config();
  auto lm = model_with(c, random_params(c, 21, 0.3));
  std::vector<std::vector<int64_t>> prompts;
  for (int64_t len : {3, 8, 5}) prompts.push_back(random_ids(1, len, c.vocab_size, uint64_t(len)).to_vector<int64_t>());
  infer::GenerateOptions options;
  options.max_new_tokens = 9;
  options.sampling.temperature = 0.0f;  // greedy
  const auto batch = infer::generate_batch(*lm, prompts, options);
  ASSERT_EQ(batch.size(), prompts.size());
  std::set<int32_t> distinct;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<int32_t> alone = infer::generate(*lm, prompts[i], options);
    EXPECT_EQ(batch[i], alone) << "prompt " << i;
    EXPECT_EQ(alone.size(), 9u);
    distinct.insert(alone.begin(), alone.end());
    // and alone it is plain greedy decoding by recomputation
    const Greedy full = greedy_recompute(*lm, from_vector(prompts[i], {1, int64_t(prompts[i].size())}), 9);
    for (size_t s = 0; s < full.tokens.size() && s < alone.size(); ++s)
      EXPECT_EQ(alone[s], full.tokens[s][0]) << "prompt " << i << " step " << s;
  }
  EXPECT_GT(distinct.size(), 3u);
}

// --- bad input

TEST(Gpt2Errors, ConfigThatDisagreesWithTheWeightsNamesFolderAndTensor) {
  const StackConfig c = small_config();
  Generator gen(2);
  Gpt2LMHeadModel lm(io::make_hf_config(c, true), gen);
  test::TempDir tmp("gpt2_bad");
  const fs::path dir = tmp / "hf";
  save_pretrained(lm, lm.hf_config(), dir);
  nlohmann::json j;
  std::ifstream(dir / "config.json") >> j;
  j["n_embd"] = 48;  // the weights are 32 wide
  std::ofstream(dir / "config.json") << j.dump(2);
  const std::string msg = test::error_message([&] { load_causal_lm(dir); });
  test::expect_mentions(msg, {dir.string().c_str(), "do not match config.json", "shape mismatch", "transformer.",
                              "[61, 32]", "[61, 48]"});
}

TEST(Gpt2Errors, SequencesLongerThanNPositionsAreRefused) {
  StackConfig c = small_config();
  c.n_positions = 16;
  auto lm = model_with(c, random_params(c, 3));
  test::expect_mentions(test::error_message([&] { lm->forward(random_ids(1, 17, c.vocab_size, 1)); }),
                        {"17 tokens", "n_positions=16"});
  // through the cache: 12 cached + 5 new
  KvCache cache = lm->make_cache(1, 32);
  lm->forward(random_ids(1, 12, c.vocab_size, 2), &cache);
  test::expect_mentions(test::error_message([&] { lm->forward(random_ids(1, 5, c.vocab_size, 3), &cache); }),
                        {"17 tokens", "n_positions=16"});
  EXPECT_EQ(cache.length(), 12);  // nothing was appended
  EXPECT_EQ(lm->forward(random_ids(1, 16, c.vocab_size, 1)).size(1), 16);  // the limit itself is fine
}

// --- gradients

TEST(Gpt2Grad, LossGradientMatchesCentralDifferences) {
  StackConfig c;
  c.kind = StackKind::gpt2;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.n_embd = 8;
  c.vocab_size = 11;
  c.n_positions = 8;
  c.intermediate_size = 32;
  auto lm = model_with(c, random_params(c, 31, 0.4));
  const Tensor ids = random_ids(2, 6, c.vocab_size, 5);
  const Tensor targets = random_ids(2, 6, c.vocab_size, 6).reshape({-1});
  auto loss_of = [&] {
    return ops::cross_entropy(lm->forward(ids).reshape({-1, c.vocab_size}), targets);
  };
  lm->zero_grad();
  loss_of().backward();
  for (const auto& [name, p] : lm->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;

  const nn::StateDict state = lm->state_dict();
  const double eps = 1e-2;
  for (const char* name : {"transformer.h.0.attn.c_attn.weight", "transformer.wpe.weight", "transformer.h.1.ln_1.bias",
                           "transformer.h.0.ln_2.weight", "transformer.h.1.mlp.c_fc.bias",
                           "transformer.h.0.attn.c_proj.weight", "transformer.ln_f.bias", "transformer.wte.weight"}) {
    const Tensor p = state.at(name);
    const std::vector<float> g = floats(p.grad());
    // the element with the largest gradient, and two others
    const size_t top = size_t(std::max_element(g.begin(), g.end(), [](float a, float b) {
                                return std::abs(a) < std::abs(b);
                              }) - g.begin());
    EXPECT_GT(std::abs(g[top]), 1e-3f) << name;
    for (size_t i : {top, g.size() / 3, (2 * g.size()) / 3 + 1}) {
      float* x = p.data<float>() + i;
      const float saved = *x;
      double plus = 0, minus = 0;
      {
        autograd::NoGradGuard no_grad;
        *x = saved + float(eps);
        plus = loss_of().item();
        *x = saved - float(eps);
        minus = loss_of().item();
        *x = saved;
      }
      const double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(g[i], numeric, 1e-4 + 2e-3 * std::abs(numeric)) << name << "[" << i << "]";
    }
  }
}

// --- MoE option

io::HfModelConfig moe_config(int64_t experts, int64_t top_k) {
  io::HfModelConfig hf = io::make_hf_config(small_config(), true);
  hf.moe.num_experts = experts;
  hf.moe.top_k = top_k;
  hf.moe.aux_loss_coef = 0.01;
  hf.moe.z_loss_coef = 0.0;
  return hf;
}

TEST(Gpt2Moe, NamesCountAuxLossAndGradients) {
  const io::HfModelConfig hf = moe_config(4, 2);
  Generator gen(8);
  Gpt2LMHeadModel lm(hf, gen);
  std::set<std::string> names;
  for (const auto& [name, t] : lm.named_parameters()) names.insert(name);
  for (const char* n : {"transformer.h.0.mlp.gate.weight", "transformer.h.2.mlp.experts.3.c_fc.weight",
                        "transformer.h.1.mlp.experts.0.c_proj.bias"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("transformer.h.0.mlp.c_fc.weight"));
  EXPECT_EQ(lm.transformer->block(0).moe->gate->weight.shape(), (Shape{4, 32}));
  EXPECT_EQ(lm.parameter_count(), io::expected_parameter_count(hf));

  const Tensor ids = random_ids(2, 7, hf.stack.vocab_size, 3);
  const LmOutput out = lm.run({.ids = ids, .cache = nullptr, .attention_mask = Tensor()});
  ASSERT_TRUE(out.aux_loss.defined());
  EXPECT_GT(out.aux_loss.item(), 0.0);
  EXPECT_EQ(out.dropped_tokens, 0);
  Tensor loss = ops::add(ops::cross_entropy(out.logits.reshape({-1, hf.stack.vocab_size}), ids.reshape({-1})),
                         out.aux_loss);
  loss.backward();
  EXPECT_TRUE(lm.transformer->block(1).moe->gate->weight.grad().defined());

  // save_pretrained / load_causal_lm keep the experts
  test::TempDir tmp("gpt2_moe");
  save_pretrained(lm, lm.hf_config(), tmp / "hf");
  auto loaded = load_causal_lm(tmp / "hf");
  EXPECT_EQ(loaded->hf_config().moe.num_experts, 4);
  EXPECT_EQ(floats(loaded->forward(ids)), floats(lm.forward(ids)));
}

TEST(Gpt2Moe, OneExpertIsTheDenseModel) {
  // one expert chosen with weight 1: the dense GPT-2 whose MLPs are that expert; aux loss 1 per layer
  const StackConfig c = small_config();
  const Params params = random_params(c, 13);
  auto dense = model_with(c, params);
  Generator gen(9);
  Gpt2LMHeadModel moe(moe_config(1, 1), gen);
  nn::StateDict state;
  const std::string mlp = ".mlp.";
  for (const auto& [name, t] : params) {
    const size_t at = name.find(mlp);
    state[at == std::string::npos ? name : name.substr(0, at) + ".mlp.experts.0." + name.substr(at + mlp.size())] = t;
  }
  const nn::LoadResult r = moe.load_state_dict(state, /*strict=*/false);
  EXPECT_TRUE(r.unexpected.empty());
  EXPECT_EQ(r.missing.size(), size_t(c.n_layer));  // the gates
  const Tensor ids = random_ids(2, 9, c.vocab_size, 3);
  const LmOutput out = moe.run({.ids = ids, .cache = nullptr, .attention_mask = Tensor()});
  EXPECT_LE(max_abs_diff(out.logits, dense->forward(ids)), 1e-5f);
  ASSERT_TRUE(out.aux_loss.defined());
  EXPECT_NEAR(out.aux_loss.item(), 0.01 * double(c.n_layer), 1e-6);
}

}  // namespace
}  // namespace ld::models
