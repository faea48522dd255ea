// infer::generate on a random LLaMA: greedy output equals argmax recomputed over the whole sequence
// without a cache; max_new_tokens, EOS (kept in the output, as Hugging Face does) and stop strings
// end it; seeded sampling is reproducible and follows the Sampler's own draws; prompts that do not
// fit the model's max_position_embeddings are refused.
#include "infer/generate.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "models/llama.hpp"
#include "models/tiny_transformer.hpp"
#include "nn/module.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "tokenizer/byte_level_bpe.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::infer {
namespace {

using models::LlamaForCausalLM;
using models::StackConfig;

StackConfig small_config() {
  StackConfig c;
  c.kind = models::StackKind::llama;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.n_embd = 32;
  c.vocab_size = 53;
  c.n_positions = 24;
  c.intermediate_size = 48;
  c.rope_theta = 500.0;
  return c;
}

// Large weights so the logits are far from ties and greedy paths are not all one repeated token.
std::unique_ptr<LlamaForCausalLM> random_model(uint64_t seed = 5) {
  const StackConfig c = small_config();
  Generator gen(seed);
  const models::Params params = models::init_params(c, gen, models::InitOptions{.std = 0.3, .norm_and_bias_jitter = 0.2});
  auto lm = std::make_unique<LlamaForCausalLM>(io::make_hf_config(c, false), gen);
  nn::StateDict state(params.begin(), params.end());
  lm->load_state_dict(state, /*strict=*/true);
  return lm;
}

GenerateOptions greedy(int64_t n) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling.temperature = 0.0f;
  return o;
}

// Independent of the cache: each step runs the whole sequence from position 0 and takes the argmax.
std::vector<int32_t> greedy_recompute(const LlamaForCausalLM& lm, std::vector<int64_t> ids, int64_t steps) {
  autograd::NoGradGuard no_grad;
  std::vector<int32_t> out;
  for (int64_t s = 0; s < steps; ++s) {
    const Tensor logits = lm.forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}));
    const Tensor last = logits.narrow(1, logits.size(1) - 1, 1);
    const int64_t next = ops::argmax(last, -1).contiguous().to_vector<int64_t>()[0];
    out.push_back(static_cast<int32_t>(next));
    ids.push_back(next);
  }
  return out;
}

const std::vector<int64_t> kPrompt = {3, 17, 41, 8, 29};

TEST(Generate, GreedyEqualsArgmaxRecomputedWithoutCache) {
  auto lm = random_model();
  std::vector<int32_t> streamed;
  const auto out = generate(*lm, kPrompt, greedy(12), [&](int32_t id) { streamed.push_back(id); });
  EXPECT_EQ(out, greedy_recompute(*lm, kPrompt, 12));
  EXPECT_EQ(streamed, out);  // the callback sees every token, in order
  // not a degenerate model: the greedy path visits several tokens
  EXPECT_GE(std::set<int32_t>(out.begin(), out.end()).size(), 3u);
}

TEST(Generate, MaxNewTokensIsRespected) {
  auto lm = random_model();
  EXPECT_EQ(generate(*lm, kPrompt, greedy(7)).size(), 7u);
  EXPECT_EQ(generate(*lm, kPrompt, greedy(1)).size(), 1u);
  EXPECT_TRUE(generate(*lm, kPrompt, greedy(0)).empty());
  // Capped at max_position_embeddings (24): 5 prompt tokens leave 19.
  EXPECT_EQ(generate(*lm, kPrompt, greedy(100)), greedy_recompute(*lm, kPrompt, 19));
}

TEST(Generate, EosStopsAndIsIncluded) {
  auto lm = random_model();
  const auto full = generate(*lm, kPrompt, greedy(12));
  // The token greedy produces at step 3, chosen so that it did not already occur earlier.
  size_t step = 3;
  while (std::find(full.begin(), full.begin() + static_cast<long>(step), full[step]) != full.begin() + static_cast<long>(step))
    ++step;
  ASSERT_LT(step, full.size());
  GenerateOptions o = greedy(12);
  o.eos_ids = {full[step]};
  const auto out = generate(*lm, kPrompt, o);
  EXPECT_EQ(out, std::vector<int32_t>(full.begin(), full.begin() + static_cast<long>(step) + 1));
  EXPECT_EQ(out.back(), full[step]);
}

TEST(Generate, AnyOfSeveralEosIdsStops) {
  auto lm = random_model();
  const auto full = generate(*lm, kPrompt, greedy(12));
  auto first_new = [&](size_t from) {  // a step whose token did not occur before it
    size_t s = from;
    while (s < full.size() && std::find(full.begin(), full.begin() + long(s), full[s]) != full.begin() + long(s)) ++s;
    return s;
  };
  const size_t early = first_new(2), late = first_new(early + 1);
  ASSERT_LT(late, full.size());
  GenerateOptions o = greedy(12);
  o.eos_ids = {full[late], full[early]};  // the order of the list does not matter
  EXPECT_EQ(generate(*lm, kPrompt, o), std::vector<int32_t>(full.begin(), full.begin() + long(early) + 1));
}

// A byte-level tokenizer without merges whose token i < 53 is the character 'A' + i (the other
// bytes follow), so the decoded text of the model's ids is known character by character.
std::unique_ptr<tok::Tokenizer> letter_tokenizer(const std::filesystem::path& dir) {
  tok::ByteLevelBpeData data;
  for (int i = 0; i < 256; ++i) data.vocab.push_back(tok::byte_to_unicode()[static_cast<size_t>(('A' + i) % 256)]);
  tok::save_tokenizer_json(data, dir);
  return tok::load_tokenizer(dir);
}

TEST(Generate, StopStringEndsGenerationOnTheTokenThatCompletesIt) {
  auto lm = random_model();
  test::TempDir dir("liandan_gen");
  auto tokenizer = letter_tokenizer(dir.path());
  const auto full = generate(*lm, kPrompt, greedy(12));
  std::string text;
  for (int32_t id : full) text += static_cast<char>('A' + id);
  ASSERT_EQ(tokenizer->decode(full), text);
  const std::string stop = text.substr(3, 2);  // spans the tokens at steps 3 and 4
  const size_t end = text.find(stop) + stop.size();  // the first time the text ends with it
  GenerateOptions o = greedy(12);
  o.tokenizer = tokenizer.get();
  o.stop_strings = {"never", stop};
  EXPECT_EQ(generate(*lm, kPrompt, o), std::vector<int32_t>(full.begin(), full.begin() + static_cast<long>(end)));
}

TEST(Generate, SeededSamplingIsReproducibleAndFollowsTheSampler) {
  auto lm = random_model();
  GenerateOptions o;
  o.max_new_tokens = 15;
  o.sampling = SamplingOptions{.temperature = 1.3f, .top_k = 20, .top_p = 0.95f, .repetition_penalty = 1.1f};
  o.seed = 77;
  const auto a = generate(*lm, kPrompt, o);
  EXPECT_EQ(a, generate(*lm, kPrompt, o));
  // Reference: the same Sampler over logits recomputed without a cache, context = prompt + output.
  autograd::NoGradGuard no_grad;
  Sampler sampler(o.sampling, o.seed);
  std::vector<int64_t> ids = kPrompt;
  std::vector<int32_t> ref;
  for (int64_t s = 0; s < o.max_new_tokens; ++s) {
    const Tensor logits = lm->forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}));
    const std::vector<float> row = logits.narrow(1, logits.size(1) - 1, 1).contiguous().to_vector<float>();
    const std::vector<int32_t> context(ids.begin(), ids.end());
    ref.push_back(sampler.sample(row, context));
    ids.push_back(ref.back());
  }
  EXPECT_EQ(a, ref);
  o.seed = 78;
  EXPECT_NE(a, generate(*lm, kPrompt, o));  // 15 draws from a wide distribution
  EXPECT_NE(a, generate(*lm, kPrompt, greedy(15)));
}

TEST(Generate, PromptsThatDoNotFitAreRefused) {
  auto lm = random_model();
  const std::vector<int64_t> too_long(25, 1), full(24, 1);
  using test::error_message;
  using test::expect_mentions;
  expect_mentions(error_message([&] { generate(*lm, too_long, greedy(4)); }), {"25 tokens", "max_position_embeddings (24)"});
  expect_mentions(error_message([&] { generate(*lm, full, greedy(4)); }), {"24 tokens", "leaves no room to generate"});
  expect_mentions(error_message([&] { generate(*lm, {}, greedy(4)); }), {"prompt is empty"});
  expect_mentions(error_message([&] { generate(*lm, {3, 53}, greedy(4)); }), {"53", "outside the vocabulary"});
  GenerateOptions o = greedy(4);
  o.stop_strings = {"x"};
  expect_mentions(error_message([&] { generate(*lm, kPrompt, o); }), {"need a tokenizer"});
}

}  // namespace
}  // namespace ld::infer
