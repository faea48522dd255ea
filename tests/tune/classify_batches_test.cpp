// Classification batches: tokenizing with truncation, right padding, epochs, exact resume from a
// cursor, and the accuracy / macro-F1 evaluation against hand-computed values.
#include "tune/classify_batches.hpp"

#include <gtest/gtest.h>

#include <set>

#include "test_util.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;

std::vector<TokenizedExample> numbered_examples(int64_t n) {
  std::vector<TokenizedExample> out;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> ids(size_t(1 + i % 4), int32_t(10 + i));  // lengths 1..4; every id names its example
    out.push_back({ids, i % 3});
  }
  return out;
}

TEST(ClassifyBatches, TokenizingKeepsTheFirstSeqLenTokens) {
  const tok::Tokenizer& tokenizer = test::small_bpe();
  const std::string text = "What is 12 + 34? Reverse: abcdefg";
  const std::vector<int32_t> all = tokenizer.encode(text);
  ASSERT_GT(all.size(), 4u);
  const std::vector<TokenizedExample> short_ones =
      tokenize_classify_examples({{text, 1, "d.jsonl:1"}, {"12", 0, "d.jsonl:2"}}, tokenizer, 4);
  EXPECT_EQ(short_ones[0].ids, std::vector<int32_t>(all.begin(), all.begin() + 4));
  EXPECT_EQ(short_ones[0].label, 1);
  EXPECT_EQ(short_ones[1].ids, tokenizer.encode("12"));
  expect_mentions(error_message([&] { tokenize_classify_examples({{"", 0, "d.jsonl:7"}}, tokenizer, 4); }),
                  {"d.jsonl:7", "no tokens"});
  expect_mentions(error_message([&] { tokenize_classify_examples({{"x", 0, "d.jsonl:1"}}, tokenizer, 0); }),
                  {"seq_len"});
}

TEST(ClassifyBatches, RowsAreRightPaddedWithTheirLabels) {
  const std::vector<TokenizedExample> ex = {{{5, 6, 7}, 2}, {{8}, 0}};
  const std::vector<const TokenizedExample*> rows = {&ex[0], &ex[1]};
  const ClassifyBatch b = pad_classify_examples(rows, /*pad_id=*/99);
  EXPECT_EQ(b.input_ids.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.input_ids.to_vector<int64_t>(), (std::vector<int64_t>{5, 6, 7, 8, 99, 99}));
  EXPECT_EQ(b.attention_mask.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(b.labels.to_vector<int64_t>(), (std::vector<int64_t>{2, 0}));
}

TEST(ClassifyBatches, AnEpochUsesEveryExampleOnce) {
  ClassifyLoader loader(numbered_examples(10), {.batch_size = 4, .shuffle = true, .seed = 3});
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  std::multiset<int64_t> seen;
  std::vector<int64_t> sizes;
  for (int i = 0; i < 3; ++i) {
    const ClassifyBatch b = loader.next();
    sizes.push_back(b.labels.size(0));
    const std::vector<int64_t> ids = b.input_ids.to_vector<int64_t>();
    const std::vector<int64_t> labels = b.labels.to_vector<int64_t>();
    for (int64_t r = 0; r < b.labels.size(0); ++r) {
      const int64_t example = ids[size_t(r * b.input_ids.size(1))] - 10;
      seen.insert(example);
      EXPECT_EQ(labels[size_t(r)], example % 3);
    }
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
  EXPECT_EQ(seen, (std::multiset<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(loader.cursor(), (ClassifyCursor{1, 0}));
}

TEST(ClassifyBatches, ResumingFromACursorGivesTheSameBatches) {
  const ClassifyLoaderOptions options{.batch_size = 3, .shuffle = true, .seed = 17, .pad_id = 0};
  ClassifyLoader whole(numbered_examples(7), options);
  for (int i = 0; i < 4; ++i) whole.next();  // 3 + 3 + 1, then 3 into the second epoch
  const ClassifyCursor saved = whole.cursor();
  EXPECT_EQ(saved, (ClassifyCursor{1, 3}));
  ClassifyLoader resumed(numbered_examples(7), options, saved);
  for (int i = 0; i < 6; ++i) {
    const ClassifyBatch a = whole.next(), b = resumed.next();
    EXPECT_EQ(a.input_ids.to_vector<int64_t>(), b.input_ids.to_vector<int64_t>()) << "batch " << i;
    EXPECT_EQ(a.attention_mask.to_vector<int64_t>(), b.attention_mask.to_vector<int64_t>());
    EXPECT_EQ(a.labels.to_vector<int64_t>(), b.labels.to_vector<int64_t>());
    EXPECT_EQ(a.cursor, b.cursor);
  }
  // Another epoch's order differs (the shuffle is per epoch).
  ClassifyLoader e0(numbered_examples(7), options), e1(numbered_examples(7), options, {1, 0});
  EXPECT_NE(e0.next().input_ids.to_vector<int64_t>(), e1.next().input_ids.to_vector<int64_t>());
}

TEST(ClassifyBatches, LoaderErrors) {
  expect_mentions(error_message([] { ClassifyLoader({}, {}); }), {"no examples"});
  expect_mentions(error_message([] { ClassifyLoader(numbered_examples(2), {.batch_size = 0}); }), {"batch_size"});
  expect_mentions(error_message([] { ClassifyLoader(numbered_examples(5), {}, {0, 5}); }),
                  {"cursor", "position 5", "5 examples"});
  expect_mentions(error_message([] { ClassifyLoader({{{}, 0}}, {}); }), {"example 0", "no tokens"});
}

// Labels [0, 0, 1, 1], predictions [0, 1, 1, 1]: accuracy 3/4; class 0 P=1 R=1/2 F1=2/3, class 1 P=2/3
// R=1 F1=4/5. Class 2 of the label set has no support and is never predicted: it counts 0 in the
// macro average (scikit-learn's zero_division=0 with labels=[0, 1, 2]): (2/3 + 4/5 + 0) / 3.
TEST(ClassifyBatches, EvaluationGivesAccuracyAndMacroF1) {
  const std::vector<TokenizedExample> ex = {{{0}, 0}, {{1}, 0}, {{1}, 1}, {{1, 1}, 1}};
  // Predicts class 0 for first token 0, class 1 for first token 1.
  const LogitsFn by_first_token = [](const ClassifyBatch& b) {
    const std::vector<int64_t> ids = b.input_ids.to_vector<int64_t>();
    std::vector<float> logits;
    for (int64_t r = 0; r < b.input_ids.size(0); ++r) {
      const bool one = ids[size_t(r * b.input_ids.size(1))] == 1;
      logits.insert(logits.end(), {one ? 0.0f : 1.0f, one ? 1.0f : 0.0f, -1.0f});
    }
    return from_vector(logits, {b.input_ids.size(0), 3});
  };
  const ClassifyMetrics two = evaluate_classification(ex, {"x", "y", "z"}, by_first_token, /*batch_size=*/3, 0);
  EXPECT_NEAR(two.accuracy, 0.75, 1e-12);
  EXPECT_NEAR(two.macro_f1, (2.0 / 3 + 4.0 / 5 + 0) / 3, 1e-12);
  EXPECT_EQ(two.examples, 4);
  expect_mentions(error_message([&] { evaluate_classification(ex, {"x", "y"}, by_first_token, 2, 0); }),
                  {"logits", "2 labels"});
}

}  // namespace
}  // namespace ld::tune
