// infer::DecodeStep against the general forward (model.run with the KV cache): the same logits
// (1e-5 relative) step after step for GPT-2 and a grouped-query LLaMA, f32 and bf16 weights, batch 1
// and a left-padded batch of 3; run_greedy's tokens are the argmax of run()'s logits and run_top_k
// keeps run()'s k largest; generate's greedy and top-k sampled output is the same token for token
// either way; a
// LoRA adapter or a prompt-tuning prefix sends generate back to the general path.
#include "infer/decode_step.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "infer/screened_head.hpp"
#include "infer/bf16_weights.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "models/gpt2.hpp"
#include "models/llama.hpp"
#include "models/tiny_transformer.hpp"
#include "peft/lora.hpp"
#include "test_util.hpp"

namespace ld::infer {
namespace {

using test::error_message;
using test::expect_mentions;

models::StackConfig stack(models::StackKind kind) {
  models::StackConfig c;
  c.kind = kind;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = kind == models::StackKind::llama ? 2 : 4;  // LLaMA: grouped-query attention
  c.n_embd = 32;
  c.vocab_size = 61;
  c.n_positions = 32;
  c.intermediate_size = kind == models::StackKind::llama ? 48 : 128;
  c.rope_theta = 500.0;
  return c;
}

// Large weights and jittered norms/biases: logits far from ties, and every weight matters.
std::unique_ptr<models::CausalLM> random_model(models::StackKind kind, bool bf16, int64_t sliding_window = 0) {
  const models::StackConfig c = stack(kind);
  Generator gen(11);
  const models::Params params =
      models::init_params(c, gen, models::InitOptions{.std = 0.3, .norm_and_bias_jitter = 0.2});
  io::HfModelConfig hf = io::make_hf_config(c, /*tie_word_embeddings=*/kind == models::StackKind::gpt2);
  hf.sliding_window = sliding_window;
  std::unique_ptr<models::CausalLM> lm = models::make_causal_lm(hf, gen);
  lm->load_state_dict(nn::StateDict(params.begin(), params.end()), /*strict=*/true);
  if (bf16) to_bf16_weights(*lm);
  return lm;
}

const std::vector<std::vector<int64_t>> kPrompts = {{3, 17, 41, 8, 29}, {5, 9}, {60, 1, 2, 7}};

// Both paths decode the same tokens from caches prefilled alike; the logits must agree each step.
void expect_same_logits(const models::CausalLM& lm, int64_t batch, int64_t steps) {
  autograd::NoGradGuard no_grad;
  std::vector<std::vector<int64_t>> prompts(kPrompts.begin(), kPrompts.begin() + batch);
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, int64_t(p.size()));
  std::vector<int64_t> ids, mask, pads;
  for (const auto& p : prompts) {
    const int64_t pad = longest - int64_t(p.size());
    pads.push_back(pad);
    ids.insert(ids.end(), size_t(pad), p.front());
    ids.insert(ids.end(), p.begin(), p.end());
    mask.insert(mask.end(), size_t(pad), 0);
    mask.insert(mask.end(), size_t(longest + steps - pad), 1);
  }
  const Tensor full_mask = from_vector(mask, {batch, longest + steps});
  models::KvCache general = lm.make_cache(batch, longest + steps), fused_cache = lm.make_cache(batch, longest + steps);
  const Tensor prompt = from_vector(ids, {batch, longest});
  for (models::KvCache* c : {&general, &fused_cache})
    lm.run({.ids = prompt, .cache = c, .attention_mask = full_mask.narrow(1, 0, longest), .last_position_only = true});
  DecodeStep fused(lm, fused_cache);
  std::vector<int64_t> tokens(static_cast<size_t>(batch), 0);
  for (int64_t step = 0; step < steps; ++step) {
    for (int64_t b = 0; b < batch; ++b) tokens[size_t(b)] = (7 * step + 13 * b + 3) % lm.config().vocab_size;
    const Tensor expected = lm.run({.ids = from_vector(tokens, {batch, 1}), .cache = &general,
                                    .attention_mask = full_mask.narrow(1, 0, longest + step + 1),
                                    .last_position_only = true})
                                .logits.contiguous();
    const std::span<const float> got = fused.run(tokens, pads);
    const std::vector<float> want = expected.to_vector<float>();
    ASSERT_EQ(got.size(), want.size());
    float scale = 0.0f, diff = 0.0f;
    for (size_t i = 0; i < want.size(); ++i) {
      scale = std::max(scale, std::abs(want[i]));
      diff = std::max(diff, std::abs(want[i] - got[i]));
    }
    EXPECT_LE(diff, 1e-5f * scale) << "step " << step;
    EXPECT_GT(scale, 1.0f);  // not trivially zero
  }
  EXPECT_EQ(fused_cache.length(), general.length());
}

TEST(DecodeStep, Gpt2LogitsMatchTheGeneralPath) {
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    auto lm = random_model(models::StackKind::gpt2, bf16);
    ASSERT_EQ(fused_decode_unsupported(*lm), "");
    expect_same_logits(*lm, 1, 4);
    expect_same_logits(*lm, 3, 4);
  }
}

TEST(DecodeStep, LlamaLogitsMatchTheGeneralPath) {
  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    auto lm = random_model(models::StackKind::llama, bf16);
    ASSERT_EQ(fused_decode_unsupported(*lm), "");
    expect_same_logits(*lm, 1, 4);
    expect_same_logits(*lm, 3, 4);
  }
}

TEST(DecodeStep, SlidingWindowMatchesTheGeneralPath) {
  auto lm = random_model(models::StackKind::llama, false, /*sliding_window=*/4);
  expect_same_logits(*lm, 3, 4);  // 5 prompt slots + 4 steps: the window cuts keys off
}

// Two steps from caches prefilled alike, fed the same tokens: run_greedy's tokens are the argmax of
// run()'s logits (a screened head), or it hands back those logits (too many rows to screen).
void expect_greedy_is_argmax(const models::CausalLM& lm, int64_t batch, bool screened) {
  autograd::NoGradGuard no_grad;
  const int64_t V = lm.config().vocab_size, steps = 6;
  std::vector<int64_t> ids(static_cast<size_t>(3 * batch));
  for (int64_t i = 0; i < 3 * batch; ++i) ids[size_t(i)] = (3 + 19 * i) % V;
  models::KvCache a = lm.make_cache(batch, 3 + steps), b_cache = lm.make_cache(batch, 3 + steps);
  for (models::KvCache* c : {&a, &b_cache})
    lm.run({.ids = from_vector(ids, {batch, 3}), .cache = c, .attention_mask = Tensor(), .last_position_only = true});
  DecodeStep greedy_step(lm, a), full_step(lm, b_cache);
  std::vector<int64_t> tokens(static_cast<size_t>(batch), 5), no_pad(static_cast<size_t>(batch), 0);
  for (int64_t step = 0; step < steps; ++step) {
    const DecodeStep::Greedy g = greedy_step.run_greedy(tokens, no_pad);
    const std::span<const float> logits = full_step.run(tokens, no_pad);
    ASSERT_EQ(g.tokens.empty(), !screened);
    for (int64_t r = 0; r < batch; ++r) {
      const auto row = logits.subspan(size_t(r * V), size_t(V));
      const int64_t want = std::max_element(row.begin(), row.end()) - row.begin();
      if (screened) {
        EXPECT_EQ(g.tokens[size_t(r)], want) << "step " << step << " row " << r;
      } else {
        ASSERT_EQ(g.logits.size(), logits.size());
        EXPECT_TRUE(std::equal(g.logits.begin(), g.logits.end(), logits.begin()));
      }
      tokens[size_t(r)] = want;
    }
  }
}

// As above for run_top_k(k): each row's logits at or above its k-th largest (ties kept) are run()'s,
// every other entry is -inf or run()'s; some are -inf when the head was screened.
void expect_top_k_is_run(const models::CausalLM& lm, int64_t batch, int64_t k, bool screened) {
  autograd::NoGradGuard no_grad;
  const int64_t V = lm.config().vocab_size, steps = 5;
  const Tensor prompt = from_vector(std::vector<int64_t>(static_cast<size_t>(2 * batch), 9), {batch, 2});
  models::KvCache a = lm.make_cache(batch, 2 + steps), b_cache = lm.make_cache(batch, 2 + steps);
  for (models::KvCache* c : {&a, &b_cache})
    lm.run({.ids = prompt, .cache = c, .attention_mask = Tensor(), .last_position_only = true});
  DecodeStep top_step(lm, a), full_step(lm, b_cache);
  std::vector<int64_t> tokens(static_cast<size_t>(batch), 4), no_pad(static_cast<size_t>(batch), 0);
  for (int64_t step = 0; step < steps; ++step) {
    const std::vector<float> got = [&] {
      const std::span<const float> t = top_step.run_top_k(tokens, no_pad, k);
      return std::vector<float>(t.begin(), t.end());
    }();
    const std::span<const float> logits = full_step.run(tokens, no_pad);
    ASSERT_EQ(got.size(), logits.size());
    int64_t dropped = 0;
    for (int64_t r = 0; r < batch; ++r) {
      const auto row = logits.subspan(size_t(r * V), size_t(V));
      std::vector<float> sorted(row.begin(), row.end());
      std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
      for (int64_t j = 0; j < V; ++j) {
        const float g = got[size_t(r * V + j)], want = row[size_t(j)];
        const bool out = g == -std::numeric_limits<float>::infinity();
        dropped += out;
        EXPECT_TRUE(out ? want < sorted[size_t(k - 1)] : g == want) << "step " << step << " row " << r << " token " << j;
      }
      tokens[size_t(r)] = (step * 11 + r * 5 + 1) % V;
    }
    EXPECT_EQ(dropped > 0, screened);
  }
}

TEST(DecodeStep, RunGreedyAndRunTopKAgreeWithRun) {
  for (auto kind : {models::StackKind::gpt2, models::StackKind::llama})
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE(std::string(kind == models::StackKind::gpt2 ? "gpt2 " : "llama ") + (bf16 ? "bf16" : "f32"));
      auto lm = random_model(kind, bf16);
      expect_greedy_is_argmax(*lm, 1, true);
      expect_greedy_is_argmax(*lm, 3, true);
      expect_greedy_is_argmax(*lm, ScreenedHead::kMaxRows + 1, false);
      expect_top_k_is_run(*lm, 1, 3, true);
      expect_top_k_is_run(*lm, 3, 3, true);
      expect_top_k_is_run(*lm, 3, 10, false);  // 10 of 61 tokens: the full product is cheaper
      expect_top_k_is_run(*lm, ScreenedHead::kMaxRows + 1, 3, false);
    }
}

GenerateOptions greedy(int64_t n, bool fused) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0.0f;
  o.fused_decode = fused;
  return o;
}

TEST(DecodeStep, GreedyGenerateIsUnchanged) {
  for (auto kind : {models::StackKind::gpt2, models::StackKind::llama})
    for (bool bf16 : {false, true}) {
      auto lm = random_model(kind, bf16);
      EXPECT_EQ(generate_batch(*lm, kPrompts, greedy(10, true)), generate_batch(*lm, kPrompts, greedy(10, false)));
      EXPECT_EQ(generate(*lm, kPrompts[0], greedy(12, true)), generate(*lm, kPrompts[0], greedy(12, false)));
    }
}

TEST(DecodeStep, TopKSamplingIsUnchanged) {
  for (auto kind : {models::StackKind::gpt2, models::StackKind::llama}) {
    auto lm = random_model(kind, false);
    GenerateOptions o = greedy(10, true);
    o.sampling = {.temperature = 0.9f, .top_k = 4, .top_p = 0.95f};
    o.seed = 21;
    const std::vector<std::vector<int32_t>> fused = generate_batch(*lm, kPrompts, o);
    o.fused_decode = false;
    EXPECT_EQ(fused, generate_batch(*lm, kPrompts, o));
  }
}

TEST(DecodeStep, AdaptersAndPromptsTakeTheGeneralPath) {
  auto lm = random_model(models::StackKind::llama, false);
  const std::vector<std::vector<int32_t>> before = generate_batch(*lm, kPrompts, greedy(6, true));
  Generator gen(3);
  peft::LoraModel lora = peft::apply_lora(*lm, peft::LoraConfig{}, gen, "llama");
  // PEFT starts lora_B at zero: make the adapter change the output, so a fused step ignoring it would show.
  for (auto& t : lora.targets) t.lora->lora_B->weight.copy_(ones(t.lora->lora_B->weight.shape()));
  expect_mentions(fused_decode_unsupported(*lm), {"q_proj", "adapter"});
  models::KvCache cache = lm->make_cache(1, 8);
  expect_mentions(error_message([&] { DecodeStep step(*lm, cache); }), {"adapter"});
  const std::vector<std::vector<int32_t>> with_lora = generate_batch(*lm, kPrompts, greedy(6, true));
  EXPECT_EQ(with_lora, generate_batch(*lm, kPrompts, greedy(6, false)));
  EXPECT_NE(with_lora, before);

  auto plain = random_model(models::StackKind::gpt2, false);
  plain->set_prompt(full({2, plain->config().n_embd}, 0.5));
  expect_mentions(fused_decode_unsupported(*plain), {"prompt"});
  EXPECT_EQ(generate(*plain, kPrompts[0], greedy(5, true)), generate(*plain, kPrompts[0], greedy(5, false)));
}

TEST(DecodeStep, BadInputIsRefused) {
  auto lm = random_model(models::StackKind::gpt2, false);
  models::KvCache cache = lm->make_cache(2, 3);
  DecodeStep step(*lm, cache);
  const std::vector<int64_t> one{1}, two{1, 2}, no_pad{0, 0}, bad_id{1, 61};
  expect_mentions(error_message([&] { step.run(one, one); }), {"1 tokens", "batch of 2"});
  expect_mentions(error_message([&] { step.run(bad_id, no_pad); }), {"61", "vocabulary"});
  expect_mentions(error_message([&] { step.run(two, two); }), {"padding"});
  for (int i = 0; i < 3; ++i) step.run(two, no_pad);
  expect_mentions(error_message([&] { step.run(two, no_pad); }), {"max_len=3"});
}

}  // namespace
}  // namespace ld::infer
