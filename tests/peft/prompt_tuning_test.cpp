// Prompt tuning: a prefix of N learned embeddings gives the same logits for the real tokens as
// feeding N real tokens whose embeddings are those vectors (GPT-2 and LLaMA, with and without
// left padding), KV-cache decoding with a prefix equals recomputation, greedy generation through
// infer::generate is unchanged by the cache, PEFT's TEXT init repeats or cuts the text's
// embeddings, and only the prompt receives gradients.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "infer/generate.hpp"
#include "ops/ops.hpp"
#include "peft/projections.hpp"
#include "peft/prompt_tuning.hpp"
#include "peft_test_util.hpp"
#include "test_util.hpp"

namespace ld::peft {
namespace {

using test::tiny_model;
using ::ld::test::error_message;
using ::ld::test::expect_mentions;
using ::ld::test::max_abs_diff;

constexpr int64_t kVirtual = 3;  // ids 0..2 of the reference model carry the prompt

infer::GenerateOptions greedy(int64_t new_tokens) {
  infer::GenerateOptions options;
  options.max_new_tokens = new_tokens;
  options.sampling.temperature = 0.0f;
  return options;
}

class PromptPrefix : public ::testing::TestWithParam<models::StackKind> {};

// The reference: a model with the same weights whose embedding rows 0..N-1 are the prompt, run on
// [0..N-1, ids]; its logits after the first N positions. Untied, so that lm_head stays the same.
TEST_P(PromptPrefix, EqualsVirtualTokensWrittenIntoTheEmbedding) {
  auto lm = tiny_model(GetParam(), 7, /*tied=*/false);
  auto reference = tiny_model(GetParam(), 7, /*tied=*/false);
  Generator gen(3);
  PromptTuning pt = apply_prompt_tuning(*lm, {.num_virtual_tokens = kVirtual}, gen);
  {
    autograd::NoGradGuard no_grad;
    input_embeddings(*reference).narrow(0, 0, kVirtual).copy_(pt.prompt->weight);
  }
  const std::vector<int64_t> row0 = {5, 9, 12, 30, 7}, row1 = {33, 4, 4, 18, 21};
  std::vector<int64_t> ids = row0, with_virtual = {0, 1, 2};
  ids.insert(ids.end(), row1.begin(), row1.end());
  with_virtual.insert(with_virtual.end(), row0.begin(), row0.end());
  for (int64_t v : {0, 1, 2}) with_virtual.push_back(v);
  with_virtual.insert(with_virtual.end(), row1.begin(), row1.end());

  Tensor got = lm->forward(test::ids_of(ids, 2));
  ASSERT_EQ(got.shape(), (Shape{2, 5, 37}));
  Tensor want = reference->forward(test::ids_of(with_virtual, 2)).narrow(1, kVirtual, 5);
  EXPECT_LT(max_abs_diff(got, want), 1e-5f);

  // Left padding: row 0 has two pads; PEFT puts the prompt's ones in front of the mask.
  Tensor mask = from_vector(std::vector<int64_t>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5});
  Tensor ref_mask = from_vector(std::vector<int64_t>{1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 8});
  Tensor got_padded = lm->forward(test::ids_of(ids, 2), nullptr, mask);
  Tensor want_padded = reference->forward(test::ids_of(with_virtual, 2), nullptr, ref_mask).narrow(1, kVirtual, 5);
  EXPECT_LT(max_abs_diff(got_padded.narrow(1, 2, 3), want_padded.narrow(1, 2, 3)), 1e-5f);
  EXPECT_LT(max_abs_diff(got_padded.narrow(0, 1, 1), want_padded.narrow(0, 1, 1)), 1e-5f);

  // The same prefix given per call instead of through the model.
  auto plain = tiny_model(GetParam(), 7, /*tied=*/false);
  Tensor explicit_prefix =
      plain->run({.ids = test::ids_of(ids, 2), .prefix_embeds = pt.prompt->weight}).logits;
  EXPECT_LT(max_abs_diff(explicit_prefix, got), 1e-6f);
}

TEST_P(PromptPrefix, KvCacheDecodingEqualsRecomputation) {
  auto lm = tiny_model(GetParam());
  Generator gen(4);
  apply_prompt_tuning(*lm, {.num_virtual_tokens = kVirtual}, gen);
  const std::vector<int64_t> seq = {5, 9, 12, 30, 7, 8, 2};
  Tensor full = lm->forward(test::ids_of(seq, 1));
  models::KvCache cache = lm->make_cache(1, int64_t(seq.size()));
  Tensor first = lm->forward(test::ids_of({5, 9, 12, 30}, 1), &cache);
  EXPECT_EQ(cache.length(), kVirtual + 4);
  EXPECT_LT(max_abs_diff(first, full.narrow(1, 0, 4)), 1e-5f);
  for (int64_t t = 4; t < int64_t(seq.size()); ++t) {
    Tensor step = lm->forward(test::ids_of({seq[size_t(t)]}, 1), &cache);
    EXPECT_LT(max_abs_diff(step, full.narrow(1, t, 1)), 1e-5f) << "step " << t;
  }
  // A cache with a mask over the real tokens only.
  models::KvCache masked = lm->make_cache(1, int64_t(seq.size()));
  lm->forward(test::ids_of({5, 9, 12, 30}, 1), &masked, ones({1, 4}, DType::i64));
  Tensor step = lm->forward(test::ids_of({7}, 1), &masked, ones({1, 5}, DType::i64));
  EXPECT_LT(max_abs_diff(step, full.narrow(1, 4, 1)), 1e-5f);
}

TEST_P(PromptPrefix, GreedyGenerationWithCacheEqualsWithout) {
  auto lm = tiny_model(GetParam());
  Generator gen(5);
  apply_prompt_tuning(*lm, {.num_virtual_tokens = kVirtual}, gen);
  std::vector<int64_t> seq = {5, 9, 12};
  const std::vector<int32_t> generated = infer::generate(*lm, seq, greedy(6));
  ASSERT_EQ(generated.size(), 6u);
  for (int32_t token : generated) {  // recompute the whole sequence each step, no cache
    Tensor logits = lm->forward(test::ids_of(seq, 1));
    const int64_t next = int64_t(ops::argmax(logits.narrow(1, logits.size(1) - 1, 1)).item());
    EXPECT_EQ(next, token);
    seq.push_back(next);
  }
}

TEST_P(PromptPrefix, UnevenBatchGenerationEqualsEachRowAlone) {
  auto lm = tiny_model(GetParam());
  Generator gen(6);
  apply_prompt_tuning(*lm, {.num_virtual_tokens = kVirtual}, gen);
  const infer::GenerateOptions options = greedy(4);
  const std::vector<std::vector<int64_t>> prompts = {{5, 9}, {12, 30, 7, 8}};
  const auto batch = infer::generate_batch(*lm, prompts, options);  // row 0 left-padded by two
  for (size_t r = 0; r < prompts.size(); ++r) EXPECT_EQ(batch[r], infer::generate(*lm, prompts[r], options)) << r;
}

INSTANTIATE_TEST_SUITE_P(Models, PromptPrefix, ::testing::Values(models::StackKind::gpt2, models::StackKind::llama),
                         [](const auto& p) { return p.param == models::StackKind::gpt2 ? "gpt2" : "llama"; });

TEST(PromptTuning, TextInitRepeatsOrCutsTheTextEmbeddings) {
  auto lm = tiny_model(models::StackKind::llama);
  const Tensor table = input_embeddings(*lm);
  Generator gen(6);
  PromptTuning repeated = apply_prompt_tuning(
      *lm, {.num_virtual_tokens = 5, .init = PromptTuningConfig::Init::text, .init_text = "ab"}, gen, {5, 6});
  const std::vector<int64_t> want = {5, 6, 5, 6, 5};
  for (int64_t i = 0; i < 5; ++i)
    EXPECT_EQ(max_abs_diff(repeated.prompt->weight.narrow(0, i, 1), table.narrow(0, want[size_t(i)], 1)), 0.0f) << i;
  auto other = tiny_model(models::StackKind::llama);
  PromptTuning cut = apply_prompt_tuning(
      *other, {.num_virtual_tokens = 2, .init = PromptTuningConfig::Init::text, .init_text = "abc"}, gen, {9, 3, 4});
  EXPECT_EQ(max_abs_diff(cut.prompt->weight.narrow(0, 0, 1), input_embeddings(*other).narrow(0, 9, 1)), 0.0f);
  EXPECT_EQ(max_abs_diff(cut.prompt->weight.narrow(0, 1, 1), input_embeddings(*other).narrow(0, 3, 1)), 0.0f);
}

TEST(PromptTuning, RandomInitIsStandardNormalAndOnlyThePromptTrains) {
  auto lm = tiny_model(models::StackKind::gpt2);
  lm->train();
  Generator gen(8);
  PromptTuning pt = apply_prompt_tuning(*lm, {.num_virtual_tokens = 4}, gen);
  const std::vector<float> v = pt.prompt->weight.to_vector<float>();
  double sq = 0;
  for (float x : v) sq += double(x) * x;
  EXPECT_GT(sq / double(v.size()), 0.4);  // N(0, 1) (PEFT's nn.Embedding), not the model's 0.02
  EXPECT_EQ(trainable_parameter_count(*lm), 0);
  EXPECT_EQ(pt.prompt->parameter_count(), 4 * 16);
  Tensor logits = lm->forward(test::ids_of({1, 2, 3}, 1));
  ops::sum(logits).backward();
  EXPECT_TRUE(pt.prompt->weight.grad().defined());
  for (const auto& [name, t] : lm->named_parameters()) EXPECT_FALSE(t.grad().defined()) << name;
}

TEST(PromptTuning, BadInputGivesOneClearError) {
  auto lm = tiny_model(models::StackKind::gpt2);
  Generator gen(1);
  expect_mentions(error_message([&] { apply_prompt_tuning(*lm, {.num_virtual_tokens = 0}, gen); }),
                  {"num_virtual_tokens=0"});
  expect_mentions(error_message([&] {
                    apply_prompt_tuning(*lm, {.num_virtual_tokens = 2, .init = PromptTuningConfig::Init::text}, gen);
                  }),
                  {"text init needs"});
  expect_mentions(error_message([&] { lm->run({.ids = test::ids_of({1}, 1), .prefix_embeds = zeros({2, 5})}); }),
                  {"prefix", "n_embd=16", "[2, 5]"});
  apply_prompt_tuning(*lm, {.num_virtual_tokens = 4}, gen);
  // n_positions = 40 counts the prompt's 4 slots.
  std::vector<int64_t> long_ids(37, 1);
  expect_mentions(error_message([&] { lm->forward(test::ids_of(long_ids, 1)); }), {"41 tokens", "prompt-tuning"});
}

}  // namespace
}  // namespace ld::peft
