// LlamaForCausalLM (the nn::Module LLaMA) against the functional stack models::forward_logits on the
// same parameters, its Hugging Face parameter names, the KV cache against recomputing the whole
// sequence, loading a tied checkpoint, and the real stories260K converted by the liandan binary
// whose greedy tokens must equal the float64 llama2.c reference's.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "models/kv_cache.hpp"
#include "models/llama.hpp"
#include "models/tiny_transformer.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld::models {
namespace {

using test::max_abs_diff;

namespace fs = std::filesystem;

StackConfig small_config() {
  StackConfig c;
  c.kind = StackKind::llama;
  c.n_layer = 3;
  c.n_head = 4;
  c.n_kv_head = 2;  // grouped-query attention
  c.n_embd = 32;
  c.vocab_size = 61;
  c.intermediate_size = 48;
  c.norm_eps = 1e-5;
  c.rope_theta = 500.0;
  return c;
}

// Parameters with large enough weights that logits are far from ties, and norm weights != 1.
Params random_params(const StackConfig& c, uint64_t seed) {
  Generator gen(seed);
  return init_params(c, gen, InitOptions{.std = 0.2, .norm_and_bias_jitter = 0.2});
}

std::unique_ptr<LlamaForCausalLM> model_with(const StackConfig& c, const Params& params) {
  Generator gen(123);
  auto lm = std::make_unique<LlamaForCausalLM>(io::make_hf_config(c, false), gen);
  nn::StateDict state(params.begin(), params.end());
  lm->load_state_dict(state, /*strict=*/true);
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

// The last position's logits [B, 1, V] and their argmax [B].
Tensor last(const Tensor& logits) { return logits.narrow(1, logits.size(1) - 1, 1); }
std::vector<int64_t> argmax_last(const Tensor& logits) {
  return ops::argmax(last(logits), -1).contiguous().to_vector<int64_t>();
}

// Appends one token per row: [B, T] + [B] -> [B, T+1].
Tensor append_tokens(const Tensor& ids, const std::vector<int64_t>& next) {
  const int64_t B = ids.size(0);
  return ops::concat({ids, from_vector(next, {B, 1})}, 1);
}

struct Greedy {
  std::vector<std::vector<int64_t>> tokens;  // per step, one per batch row
  std::vector<Tensor> logits;                // per step, [B, 1, V]
};

Greedy greedy_with_cache(const models::CausalLM& lm, const Tensor& prompt, int64_t steps, int64_t max_len) {
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

Greedy greedy_recompute(const models::CausalLM& lm, const Tensor& prompt, int64_t steps) {
  Greedy g;
  Tensor ids = prompt;
  for (int64_t s = 0; s < steps; ++s) {
    Tensor logits = lm.forward(ids);
    g.logits.push_back(last(logits).contiguous());
    g.tokens.push_back(argmax_last(logits));
    ids = append_tokens(ids, g.tokens.back());
  }
  return g;
}

TEST(Llama, LogitsEqualTheFunctionalStack) {
  const StackConfig c = small_config();
  const Params params = random_params(c, 7);
  auto lm = model_with(c, params);
  const Tensor ids = random_ids(2, 9, c.vocab_size, 3);
  const Tensor ours = lm->forward(ids);
  EXPECT_EQ(ours.shape(), (Shape{2, 9, c.vocab_size}));
  EXPECT_LE(max_abs_diff(ours, forward_logits(c, params, ids)), 1e-5f);
  // i32 ids too
  EXPECT_LE(max_abs_diff(lm->forward(ids.to(DType::i32)), ours), 0.0f);
}

TEST(Llama, ParameterNamesAreHuggingFaces) {
  const StackConfig c = small_config();
  Generator gen(1);
  LlamaForCausalLM lm(io::make_hf_config(c, false), gen);
  Generator gen2(1);
  const Params reference = init_params(c, gen2);
  std::set<std::string> names;
  int64_t elements = 0;
  for (const auto& [name, t] : lm.named_parameters()) names.insert(name);
  for (const auto& [name, t] : reference) elements += t.numel();
  EXPECT_EQ(names.size(), lm.named_parameters().size());
  std::set<std::string> expected;
  for (const auto& [name, t] : reference) expected.insert(name);
  EXPECT_EQ(names, expected);
  EXPECT_EQ(lm.parameter_count(), elements);
  EXPECT_TRUE(names.count("model.layers.2.self_attn.k_proj.weight"));
  EXPECT_EQ(lm.model->layer(0).self_attn->k_proj->weight.shape(), (Shape{2 * 8, 32}));
}

TEST(Llama, TiedLmHeadSharesTheEmbedding) {
  const StackConfig c = small_config();
  Generator gen(2);
  LlamaForCausalLM lm(io::make_hf_config(c, true), gen);
  for (const auto& [name, t] : lm.named_parameters()) EXPECT_NE(name, "lm_head.weight");
  const nn::StateDict state = lm.state_dict();
  ASSERT_TRUE(state.count("lm_head.weight"));
  EXPECT_EQ(state.at("lm_head.weight").data<float>(), state.at("model.embed_tokens.weight").data<float>());
}

TEST(Llama, KvCacheDecodingEqualsRecomputing) {
  const StackConfig c = small_config();
  auto lm = model_with(c, random_params(c, 11));
  for (int64_t batch : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const Tensor prompt = random_ids(batch, 5, c.vocab_size, 17);
    const Greedy cached = greedy_with_cache(*lm, prompt, 11, 32);  // the prompt's next token + 10 decoded
    const Greedy full = greedy_recompute(*lm, prompt, 11);
    EXPECT_EQ(cached.tokens, full.tokens);
    for (size_t s = 0; s < full.logits.size(); ++s)
      EXPECT_LE(max_abs_diff(cached.logits[s], full.logits[s]), 1e-4f) << "step " << s;
    // the decoded tokens are not all one token (the comparison would be weak)
    std::set<int64_t> distinct;
    for (const auto& t : full.tokens) distinct.insert(t.begin(), t.end());
    EXPECT_GT(distinct.size(), 2u);
  }
}

TEST(Llama, KvCacheChunkedPrefillEqualsFullForward) {
  // a prompt fed in chunks of 3, 1 and 4 through the cache gives the full forward's logits
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

TEST(Llama, KvCacheOverflowNamesTheLimit) {
  const StackConfig c = small_config();
  auto lm = model_with(c, random_params(c, 5));
  KvCache cache = lm->make_cache(1, 6);
  lm->forward(random_ids(1, 4, c.vocab_size, 1), &cache);
  const std::string msg = test::error_message([&] { lm->forward(random_ids(1, 3, c.vocab_size, 2), &cache); });
  test::expect_mentions(msg, {"KV cache", "max_len=6", "3 new tokens", "4 cached"});
  EXPECT_EQ(cache.length(), 4);  // nothing was appended
  // a cache for another batch size is refused
  KvCache other = lm->make_cache(2, 6);
  test::expect_mentions(test::error_message([&] { lm->forward(random_ids(1, 1, c.vocab_size, 2), &other); }),
                        {"KV cache", "batch"});
}

TEST(Llama, LoadsATiedCheckpointWithoutLmHead) {
  const StackConfig c = small_config();
  Generator gen(4);
  LlamaForCausalLM original(io::make_hf_config(c, true), gen);
  test::TempDir dir("llama_tied");
  io::write_hf_config(dir.path(), io::make_hf_config(c, true));
  std::vector<std::pair<std::string, Tensor>> tensors = original.named_parameters();  // no lm_head.weight
  io::save_safetensors(dir / "model.safetensors", tensors);
  auto loaded = models::load_causal_lm(dir.path());
  EXPECT_TRUE(loaded->hf_config().tie_word_embeddings);
  const Tensor ids = random_ids(1, 6, c.vocab_size, 8);
  EXPECT_LE(max_abs_diff(loaded->forward(ids), original.forward(ids)), 0.0f);
}

TEST(Llama, IgnoresTheOldRotaryBufferButNotOtherExtras) {
  const StackConfig c = small_config();
  Generator gen(4);
  LlamaForCausalLM original(io::make_hf_config(c, true), gen);
  test::TempDir dir("llama_inv_freq");
  io::write_hf_config(dir.path(), io::make_hf_config(c, true));
  std::vector<std::pair<std::string, Tensor>> tensors = original.named_parameters();
  // transformers < 4.31 saved RoPE's inverse frequencies as a buffer in every layer
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", ones({c.head_dim() / 2}));
  io::save_safetensors(dir / "model.safetensors", tensors);
  const Tensor ids = random_ids(1, 6, c.vocab_size, 8);
  EXPECT_LE(max_abs_diff(models::load_causal_lm(dir.path())->forward(ids), original.forward(ids)), 0.0f);

  tensors.emplace_back("model.layers.0.self_attn.rotary.extra", ones({2}));
  io::save_safetensors(dir / "model.safetensors", tensors);
  test::expect_mentions(test::error_message([&] { models::load_causal_lm(dir.path()); }),
                        {"do not match config.json", "model.layers.0.self_attn.rotary.extra"});
}

#ifndef LIANDAN_BINARY
#error "llama_test needs LIANDAN_BINARY (the liandan executable) and LIANDAN_SHARED_DIR"
#endif

TEST(Llama, Stories260KGreedyWithKvCacheEqualsTheReference) {
  const fs::path bin = fs::path(LIANDAN_SHARED_DIR) / "models/stories260K/stories260K.bin";
  ASSERT_TRUE(fs::exists(bin)) << bin;
  test::TempDir tmp("llama_stories");
  const fs::path dir = tmp / "hf";
  const std::string cmd = std::string("\"") + LIANDAN_BINARY + "\" convert --from llama2c \"" + bin.string() +
                          "\" --to hf \"" + dir.string() + "\" >\"" + (tmp / "log").string() + "\" 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "convert failed: " << cmd;
  auto lm = models::load_causal_lm(dir);

  // BOS = 1; 40 greedy tokens, the float64 llama2.c reference's
  const std::vector<int64_t> expected = {461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409,
                                         283, 264, 283, 452, 288, 13,  431, 431, 431, 431, 431, 431, 431, 431,
                                         431, 431, 431, 431, 431, 293, 430, 417, 363, 416, 315, 342};
  const Greedy g = greedy_with_cache(*lm, from_vector(std::vector<int64_t>{1}, {1, 1}), 40, 64);
  std::vector<int64_t> tokens;
  for (const auto& t : g.tokens) tokens.push_back(t[0]);
  EXPECT_EQ(tokens, expected);
}

}  // namespace
}  // namespace ld::models
