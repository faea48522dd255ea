// Classification metrics against hand-computed confusion matrices (scikit-learn's conventions with
// zero_division=0), top-k accuracy, perplexity and exact match on small hand examples.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/classification.hpp"
#include "eval/exact_match.hpp"
#include "eval/perplexity.hpp"
#include "test_util.hpp"

namespace ld::eval {
namespace {

void expect_prf(const PrecisionRecallF1& s, double p, double r, double f1) {
  EXPECT_NEAR(s.precision, p, 1e-12);
  EXPECT_NEAR(s.recall, r, 1e-12);
  EXPECT_NEAR(s.f1, f1, 1e-12);
}

// references: cat cat dog dog dog bird; predictions: cat dog dog dog cat cat.
//            predicted:  bird cat dog
//   reference bird         0   1   0     support 1
//   reference cat          0   1   1     support 2
//   reference dog          0   1   2     support 3
// bird: never predicted, P = 0/0 -> 0, R = 0/1, F1 = 0.   cat: P = 1/3, R = 1/2, F1 = 2/5.
// dog: P = 2/3, R = 2/3, F1 = 2/3.   accuracy 3/6.
TEST(Classification, HandComputedThreeClasses) {
  ConfusionMatrix m = confusion_matrix({"cat", "cat", "dog", "dog", "dog", "bird"},
                                       {"cat", "dog", "dog", "dog", "cat", "cat"});
  EXPECT_EQ(m.labels, (std::vector<std::string>{"bird", "cat", "dog"}));  // sorted, as sklearn's np.unique
  EXPECT_EQ(m.counts, (std::vector<std::vector<int64_t>>{{0, 1, 0}, {0, 1, 1}, {0, 1, 2}}));
  ClassificationReport r = classification_report(m);
  expect_prf(r.per_class[0].scores, 0, 0, 0);
  expect_prf(r.per_class[1].scores, 1.0 / 3, 0.5, 0.4);
  expect_prf(r.per_class[2].scores, 2.0 / 3, 2.0 / 3, 2.0 / 3);
  EXPECT_EQ(r.per_class[2].support, 3);
  EXPECT_EQ(r.per_class[1].predicted, 3);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.5);
  expect_prf(r.micro, 0.5, 0.5, 0.5);
  expect_prf(r.macro, 1.0 / 3, 7.0 / 18, 16.0 / 45);
  // Weighted by support 1, 2, 3 of 6.
  expect_prf(r.weighted, 4.0 / 9, 0.5, 7.0 / 15);
}

// references a a b, predictions a c b, label set a b c d:
//   a: P 1/1, R 1/2, F1 2/3 (support 2).  b: 1, 1, 1 (support 1).
//   c: only ever predicted: P 0/1 = 0, R 0/0 -> 0, F1 0 (support 0).  d: never anywhere: all 0/0 -> 0.
TEST(Classification, ClassesThatNeverOccurCountAsZero) {
  ConfusionMatrix m = confusion_matrix({"a", "a", "b"}, {"a", "c", "b"}, {"a", "b", "c", "d"});
  EXPECT_EQ(m.counts, (std::vector<std::vector<int64_t>>{{1, 0, 1, 0}, {0, 1, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}}));
  ClassificationReport r = classification_report(m);
  expect_prf(r.per_class[0].scores, 1, 0.5, 2.0 / 3);
  expect_prf(r.per_class[1].scores, 1, 1, 1);
  expect_prf(r.per_class[2].scores, 0, 0, 0);
  expect_prf(r.per_class[3].scores, 0, 0, 0);
  // The label set's classes all count in the macro average, even d, which occurs nowhere.
  expect_prf(r.macro, 0.5, 0.375, 5.0 / 12);
  // Support-weighted: c and d weigh nothing.
  expect_prf(r.weighted, 1.0, 2.0 / 3, 7.0 / 9);
  expect_prf(r.micro, 2.0 / 3, 2.0 / 3, 2.0 / 3);

  // Without a label set the classes are those seen (a, b, c): d drops out of the macro average.
  ClassificationReport seen = classification_report(confusion_matrix({"a", "a", "b"}, {"a", "c", "b"}));
  EXPECT_EQ(seen.matrix.labels, (std::vector<std::string>{"a", "b", "c"}));
  expect_prf(seen.macro, 2.0 / 3, 0.5, 5.0 / 9);
}

TEST(Classification, MicroF1IsAccuracyForSingleLabelMulticlass) {
  std::mt19937 rng(11);
  const std::vector<std::string> labels = {"x", "y", "z", "w", "v"};
  for (int trial = 0; trial < 5; ++trial) {
    std::vector<std::string> refs, hyps;
    for (int i = 0; i < 200; ++i) {
      refs.push_back(labels[rng() % 5]);
      hyps.push_back(rng() % 3 == 0 ? refs.back() : labels[rng() % 5]);
    }
    ClassificationReport r = classification_report(confusion_matrix(refs, hyps));
    EXPECT_NEAR(r.micro.f1, r.accuracy, 1e-12);
    EXPECT_NEAR(r.micro.precision, r.accuracy, 1e-12);
    EXPECT_NEAR(r.micro.recall, r.accuracy, 1e-12);
    EXPECT_NEAR(r.accuracy, accuracy(refs, hyps), 1e-15);
    // Weighted recall is accuracy too: sum over classes of (support/n) * (tp/support).
    EXPECT_NEAR(r.weighted.recall, r.accuracy, 1e-12);
  }
}

TEST(Classification, LabelsAreArbitraryStrings) {
  ClassificationReport r =
      classification_report(confusion_matrix({"very good", "négatif", "very good"}, {"very good", "very good", "négatif"}));
  EXPECT_EQ(r.matrix.labels, (std::vector<std::string>{"négatif", "very good"}));
  EXPECT_EQ(r.correct, 1);
}

TEST(Classification, BadInputIsAnError) {
  test::expect_mentions(test::error_message([] { confusion_matrix({"a", "b"}, {"a", "x"}, {"a", "b"}); }),
                        {"prediction 2", "'x'", "not in the label set"});
  test::expect_mentions(test::error_message([] { confusion_matrix({"a"}, {"a", "b"}); }), {"1 references", "2 predictions"});
  test::expect_mentions(test::error_message([] { confusion_matrix({"a"}, {"a"}, {"a", "a"}); }), {"'a'", "twice"});
}

// Scores for 4 examples over 3 classes; targets 0, 1, 2, 2.
//   row 0: class 0 is highest                 -> top-1 hit
//   row 1: class 1 is second (0.5 < 0.6)      -> top-2 hit
//   row 2: class 2 is last                    -> top-3 hit only
//   row 3: 0.3 ties with class 0; sklearn ranks the higher index first, so class 2 is first -> top-1 hit
TEST(TopKAccuracy, HandExample) {
  const std::vector<std::vector<double>> scores = {
      {0.7, 0.2, 0.1}, {0.6, 0.5, -1.0}, {0.5, 0.4, 0.1}, {0.3, 0.1, 0.3}};
  const std::vector<int64_t> targets = {0, 1, 2, 2};
  EXPECT_DOUBLE_EQ(top_k_accuracy(scores, targets, 1), 0.5);
  EXPECT_DOUBLE_EQ(top_k_accuracy(scores, targets, 2), 0.75);
  EXPECT_DOUBLE_EQ(top_k_accuracy(scores, targets, 3), 1.0);
  test::expect_mentions(test::error_message([&] { top_k_accuracy(scores, {0, 1, 2, 3}, 1); }), {"row 4", "target 3"});
}

TEST(Perplexity, KnownNlls) {
  // Mean of ln 2, ln 4, ln 8 is ln 4.
  EXPECT_NEAR(perplexity({std::log(2.0), std::log(4.0), std::log(8.0)}), 4.0, 1e-12);
  // A uniform model over 50257 tokens has perplexity 50257.
  EXPECT_NEAR(perplexity(std::vector<double>(7, std::log(50257.0))), 50257.0, 1e-7);
  EXPECT_NEAR(perplexity({0.0, 0.0}), 1.0, 0.0);
  EXPECT_NEAR(perplexity_from_total(3 * std::log(5.0), 3), 5.0, 1e-12);
  test::expect_mentions(test::error_message([] { perplexity({}); }), {"no tokens"});
  test::expect_mentions(test::error_message([] { perplexity({1.0, -0.5}); }), {"token 1", "negative"});
}

TEST(ExactMatch, ByteForByte) {
  EXPECT_DOUBLE_EQ(exact_match({"Paris", "4", "yes"}, {"Paris", "four", "yes "}), 1.0 / 3);
  EXPECT_DOUBLE_EQ(exact_match({"a"}, {"a"}), 1.0);
}

}  // namespace
}  // namespace ld::eval
