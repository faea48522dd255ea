// Token samplers: each filter on hand-made logits with the surviving set worked out by hand, the
// Hugging Face order of the chain, a float64 reference of the whole chain written the way
// transformers' warpers are (full-vocabulary masks, ascending sort for top-p), and draw frequencies.
#include "infer/sampling.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "test_util.hpp"

namespace ld::infer {
namespace {

using Tokens = std::vector<int32_t>;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

Tokens survivors(SamplingOptions o, const std::vector<float>& logits, const Tokens& context = {}) {
  Sampler s(o, 0);
  Candidates c = s.candidates(logits, context);
  return Tokens(c.tokens.begin(), c.tokens.end());
}

std::vector<float> logs_of(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(float(std::log(p)));
  return out;
}

// ---------------------------------------------------------------- float64 reference, HF style

std::vector<double> softmax(const std::vector<double>& s) {
  const double m = *std::max_element(s.begin(), s.end());
  std::vector<double> p(s.size());
  double z = 0.0;
  for (size_t i = 0; i < s.size(); ++i) z += p[i] = std::exp(s[i] - m);
  for (double& v : p) v /= z;
  return p;
}

// Token ids sorted by score ascending; among equal scores the higher id first (so it counts as less
// probable, the tie rule of the Sampler).
std::vector<size_t> ascending(const std::vector<double>& s) {
  std::vector<size_t> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return s[a] < s[b] || (s[a] == s[b] && a > b); });
  return idx;
}

void ref_penalty(std::vector<double>& s, const Tokens& context, double penalty) {
  std::set<int32_t> seen(context.begin(), context.end());
  for (int32_t t : seen) s[size_t(t)] = s[size_t(t)] < 0 ? s[size_t(t)] * penalty : s[size_t(t)] / penalty;
}

void ref_top_k(std::vector<double>& s, int k) {
  std::vector<double> sorted = s;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const double kth = sorted[size_t(std::min<size_t>(size_t(k), s.size()) - 1)];
  for (double& v : s)
    if (v < kth) v = kNegInf;
}

void ref_top_p(std::vector<double>& s, double top_p) {
  const std::vector<double> p = softmax(s);
  const std::vector<size_t> idx = ascending(s);
  double cumulative = 0.0;
  for (size_t j = 0; j + 1 < idx.size(); ++j) {  // the last (most probable) is always kept
    cumulative += p[idx[j]];
    if (cumulative <= 1.0 - top_p) s[idx[j]] = kNegInf;
  }
}

void ref_min_p(std::vector<double>& s, double min_p) {
  const std::vector<double> p = softmax(s);
  const size_t best = ascending(s).back();
  const double p_max = p[best];
  for (size_t i = 0; i < s.size(); ++i)
    if (i != best && p[i] < min_p * p_max) s[i] = kNegInf;
}

// token -> probability of the tokens with a non-zero probability after the whole chain
std::map<int32_t, double> reference(const SamplingOptions& o, const std::vector<float>& logits, const Tokens& context) {
  std::vector<double> s(logits.begin(), logits.end());
  if (o.repetition_penalty != 1.0f) ref_penalty(s, context, o.repetition_penalty);
  for (double& v : s) v /= o.temperature;
  if (o.top_k > 0) ref_top_k(s, o.top_k);
  if (o.top_p < 1.0f) ref_top_p(s, o.top_p);
  if (o.min_p > 0.0f) ref_min_p(s, o.min_p);
  const std::vector<double> p = softmax(s);
  std::map<int32_t, double> out;
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] > 0.0) out[int32_t(i)] = p[i];
  return out;
}

// ---------------------------------------------------------------- greedy and validation

TEST(Sampling, GreedyIsArgmaxFirstIndexOnTies) {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.top_k = 1;
  o.top_p = 0.1f;
  Sampler s(o, 7);
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f, -std::numeric_limits<float>::infinity()};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(logits, {}), 1);
  EXPECT_EQ(s.draws(), 5u);
}

TEST(Sampling, GreedyAppliesRepetitionPenaltyFirst) {
  SamplingOptions o;
  o.temperature = 0.0f;
  o.repetition_penalty = 2.0f;
  Sampler s(o, 0);
  const Tokens seen = {1};
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 3.0f, 2.0f}, seen), 2);           // 3 / 2 = 1.5 < 2
  EXPECT_EQ(s.sample(std::vector<float>{-1.0f, -0.6f, -1.2f}, seen), 0);        // -0.6 * 2 = -1.2
}

TEST(Sampling, ValidationNamesTheOptionAndValue) {
  auto bad = [](auto edit, std::initializer_list<const char*> parts) {
    SamplingOptions o;
    edit(o);
    test::expect_mentions(test::error_message([&] { Sampler s(o, 0); }), parts);
  };
  bad([](SamplingOptions& o) { o.temperature = -0.5f; }, {"temperature", "-0.5"});
  bad([](SamplingOptions& o) { o.temperature = std::nanf(""); }, {"temperature", "nan"});
  bad([](SamplingOptions& o) { o.top_k = -1; }, {"top_k", "-1"});
  bad([](SamplingOptions& o) { o.top_p = 0.0f; }, {"top_p", "0"});
  bad([](SamplingOptions& o) { o.top_p = 1.5f; }, {"top_p", "1.5"});
  bad([](SamplingOptions& o) { o.min_p = -0.25f; }, {"min_p", "-0.25"});
  bad([](SamplingOptions& o) { o.min_p = 2.0f; }, {"min_p", "2"});
  bad([](SamplingOptions& o) { o.repetition_penalty = 0.0f; }, {"repetition_penalty", "0"});
  bad([](SamplingOptions& o) { o.repetition_penalty = -1.0f; }, {"repetition_penalty", "-1"});
  SamplingOptions edge;  // the closed ends are allowed
  edge.top_p = 1.0f;
  edge.min_p = 1.0f;
  EXPECT_NO_THROW(Sampler(edge, 0));
}

TEST(Sampling, BadLogitsAndContextAreErrors) {
  Sampler s(SamplingOptions{}, 0);
  const float inf = std::numeric_limits<float>::infinity();
  test::expect_mentions(test::error_message([&] { s.sample({}, {}); }), {"empty"});
  test::expect_mentions(test::error_message([&] { s.sample(std::vector<float>{0.f, std::nanf("")}, {}); }),
                        {"token 1", "NaN"});
  test::expect_mentions(test::error_message([&] { s.sample(std::vector<float>{0.f, inf}, {}); }), {"token 1", "+inf"});
  test::expect_mentions(test::error_message([&] { s.sample(std::vector<float>{-inf, -inf}, {}); }), {"-inf"});
  test::expect_mentions(test::error_message([&] { s.sample(std::vector<float>{0.f, 1.f}, Tokens{0, 2}); }),
                        {"context token 2", "2 logits"});
  test::expect_mentions(test::error_message([&] { s.sample(std::vector<float>{0.f, 1.f}, Tokens{-1}); }),
                        {"context token -1"});
  SamplingOptions cold;
  cold.temperature = 1e-38f;
  Sampler c(cold, 0);
  test::expect_mentions(test::error_message([&] { c.sample(std::vector<float>{0.f, 1e3f}, {}); }), {"temperature"});
}

// ---------------------------------------------------------------- each filter alone, by hand

TEST(Sampling, TopKKeepsEveryTieAtTheKthValue) {
  const std::vector<float> logits = {1, 5, 3, 5, 2, 3};
  auto top_k = [&](int k) {
    SamplingOptions o;
    o.top_k = k;
    return survivors(o, logits);
  };
  EXPECT_EQ(top_k(1), (Tokens{1, 3}));  // two tokens share the best logit
  EXPECT_EQ(top_k(2), (Tokens{1, 3}));
  EXPECT_EQ(top_k(3), (Tokens{1, 3, 2, 5}));
  EXPECT_EQ(top_k(5), (Tokens{1, 3, 2, 5, 4}));
  EXPECT_EQ(top_k(6), (Tokens{1, 3, 2, 5, 4, 0}));
  EXPECT_EQ(top_k(100), (Tokens{1, 3, 2, 5, 4, 0}));
  EXPECT_EQ(top_k(0), (Tokens{1, 3, 2, 5, 4, 0}));
}

TEST(Sampling, MinusInfinityTokensAreNeverCandidates) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {0.0f, -inf, 1.0f, -inf};
  SamplingOptions o;
  EXPECT_EQ(survivors(o, logits), (Tokens{2, 0}));
  o.top_k = 3;  // the 3rd best is -inf: its ties stay for top-k but have probability zero
  EXPECT_EQ(survivors(o, logits), (Tokens{2, 0}));
}

TEST(Sampling, TopPBoundariesOnExactProbabilities) {
  // Eight equal logits: every probability is 1/8 and every partial sum is exact.
  const std::vector<float> logits(8, 0.25f);
  auto top_p = [&](float p) {
    SamplingOptions o;
    o.top_p = p;
    return survivors(o, logits).size();
  };
  EXPECT_EQ(top_p(0.5f), 4u);         // 4/8 reaches 0.5 exactly: no fifth token
  EXPECT_EQ(top_p(0.50001f), 5u);     // just above: one more token is needed
  EXPECT_EQ(top_p(0.375f), 3u);
  EXPECT_EQ(top_p(0.125f), 1u);
  EXPECT_EQ(top_p(0.01f), 1u);        // never fewer than one
  EXPECT_EQ(top_p(0.875f), 7u);
  EXPECT_EQ(top_p(0.9f), 8u);
  EXPECT_EQ(top_p(1.0f), 8u);
  SamplingOptions o;
  o.top_p = 0.25f;
  EXPECT_EQ(survivors(o, logits), (Tokens{0, 1}));  // ties: lower ids are kept
}

TEST(Sampling, TopPOnUnequalProbabilities) {
  // probabilities 0.05 0.4 0.1 0.3 0.15 (token 1 best, then 3, 4, 2, 0)
  const std::vector<float> logits = logs_of({0.05, 0.4, 0.1, 0.3, 0.15});
  auto top_p = [&](float p) {
    SamplingOptions o;
    o.top_p = p;
    return survivors(o, logits);
  };
  EXPECT_EQ(top_p(0.3f), (Tokens{1}));
  EXPECT_EQ(top_p(0.45f), (Tokens{1, 3}));
  EXPECT_EQ(top_p(0.8f), (Tokens{1, 3, 4}));
  EXPECT_EQ(top_p(0.9f), (Tokens{1, 3, 4, 2}));
  EXPECT_EQ(top_p(0.97f), (Tokens{1, 3, 4, 2, 0}));
}

TEST(Sampling, MinPDropsTokensBelowAFractionOfTheBest) {
  // probability ratios to the best: token 2 = 1, 0 = 0.5, 4 = 0.2, 1 = 0.05, 3 = 0.01
  const std::vector<float> logits = logs_of({0.5, 0.05, 1.0, 0.01, 0.2});
  auto min_p = [&](float m) {
    SamplingOptions o;
    o.min_p = m;
    return survivors(o, logits);
  };
  EXPECT_EQ(min_p(0.6f), (Tokens{2}));
  EXPECT_EQ(min_p(0.3f), (Tokens{2, 0}));
  EXPECT_EQ(min_p(0.1f), (Tokens{2, 0, 4}));
  EXPECT_EQ(min_p(0.02f), (Tokens{2, 0, 4, 1}));
  EXPECT_EQ(min_p(0.001f), (Tokens{2, 0, 4, 1, 3}));
  // min_p = 1 keeps exactly the tokens tied with the best (p == 1 * p_max is not "<").
  SamplingOptions o;
  o.min_p = 1.0f;
  EXPECT_EQ(survivors(o, std::vector<float>{2, 1, 2, 0}), (Tokens{0, 2}));
}

TEST(Sampling, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  const std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.0f, 0.5f};
  const Tokens context = {0, 1, 1, 3, 1};  // repeats count once
  for (float penalty : {2.0f, 0.5f}) {
    SamplingOptions o;
    o.repetition_penalty = penalty;
    Sampler s(o, 0);
    Candidates c = s.candidates(logits, context);
    const std::vector<double> expected_logits = {2.0 / penalty, -2.0 * penalty, 1.0, 0.0, 0.5};
    const std::vector<double> expected = softmax(expected_logits);
    ASSERT_EQ(c.tokens.size(), 5u);
    for (size_t i = 0; i < 5; ++i)
      EXPECT_NEAR(c.probs[i], expected[size_t(c.tokens[i])], 1e-12) << "penalty " << penalty << " token " << c.tokens[i];
  }
}

TEST(Sampling, TemperatureScalesTheLogits) {
  SamplingOptions o;
  o.temperature = 0.5f;
  Sampler s(o, 0);
  Candidates c = s.candidates(std::vector<float>{0.0f, 1.0f}, {});
  ASSERT_EQ(c.tokens.size(), 2u);
  EXPECT_EQ(c.tokens[0], 1);
  EXPECT_NEAR(c.probs[0], 1.0 / (1.0 + std::exp(-2.0)), 1e-12);
}

// ---------------------------------------------------------------- the order of the chain

TEST(Sampling, TopPRunsOnTheTopKRenormalisedDistribution) {
  // p = 0.5 0.3 0.1 0.1, top_k 2, top_p 0.6. HF (top-k first): 0.625 / 0.375 renormalised, and
  // 0.375 <= 1 - 0.6 so only token 0 stays. Top-p first would keep {0, 1} (0.2 <= 0.4 < 0.5).
  SamplingOptions o;
  o.top_k = 2;
  o.top_p = 0.6f;
  EXPECT_EQ(survivors(o, logs_of({0.5, 0.3, 0.1, 0.1})), (Tokens{0}));
}

TEST(Sampling, TopPRunsAfterTemperature) {
  // At T = 0.5, p becomes 0.25 0.09 0.01 0.01 over 0.36: 0.694 0.25 0.028 0.028, so top_p 0.6
  // keeps only token 0; top-p before the temperature would keep {0, 1}.
  SamplingOptions o;
  o.temperature = 0.5f;
  o.top_p = 0.6f;
  EXPECT_EQ(survivors(o, logs_of({0.5, 0.3, 0.1, 0.1})), (Tokens{0}));
}

TEST(Sampling, TopKRunsAfterRepetitionPenalty) {
  SamplingOptions o;
  o.top_k = 1;
  o.repetition_penalty = 4.0f;
  EXPECT_EQ(survivors(o, std::vector<float>{4.0f, 3.0f}, Tokens{0}), (Tokens{1}));  // 4 / 4 = 1 < 3
}

// ---------------------------------------------------------------- whole chain vs the reference

TEST(Sampling, ChainMatchesFloat64ReferenceOnRandomCases) {
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  int filtered_somewhere = 0;
  for (int c = 0; c < 50; ++c) {
    // Every fifth case has a large, flat vocabulary, so that top-p's sorted head must grow.
    const bool large = c % 5 == 4;
    const size_t vocab = large ? 3000 + size_t(unit(rng) * 20000) : 5 + size_t(unit(rng) * 300);
    std::vector<float> logits(vocab);
    for (float& v : logits) v = large ? 0.3f * normal(rng) : normal(rng);
    Tokens context(size_t(unit(rng) * 20));
    for (int32_t& t : context) t = int32_t(unit(rng) * double(vocab));
    SamplingOptions o;
    o.temperature = float(0.3 + 1.7 * unit(rng));
    if (unit(rng) < 0.6) o.top_k = 1 + int(unit(rng) * double(vocab + 10));
    if (unit(rng) < 0.6) o.top_p = float(0.05 + 0.95 * unit(rng));
    if (unit(rng) < 0.6) o.min_p = float(0.3 * unit(rng));
    if (unit(rng) < 0.6) o.repetition_penalty = float(0.5 + 1.5 * unit(rng));
    const std::map<int32_t, double> expected = reference(o, logits, context);
    Sampler s(o, 0);
    const Candidates got = s.candidates(logits, context);
    std::map<int32_t, double> got_map;
    for (size_t i = 0; i < got.tokens.size(); ++i) got_map[got.tokens[i]] = got.probs[i];
    ASSERT_EQ(got_map.size(), expected.size()) << "case " << c;
    for (const auto& [token, p] : expected) {
      ASSERT_TRUE(got_map.count(token)) << "case " << c << ": token " << token << " missing";
      // 1e-5: the Sampler scales logits in float, as HF does on float32 tensors; the reference in double.
      EXPECT_NEAR(got_map[token], p, 1e-5 * p + 1e-12) << "case " << c << " token " << token;
    }
    for (size_t i = 1; i < got.probs.size(); ++i) EXPECT_GE(got.probs[i - 1], got.probs[i]);
    filtered_somewhere += expected.size() < vocab;
  }
  EXPECT_GE(filtered_somewhere, 20);  // the filters really cut in most cases
}

// ---------------------------------------------------------------- draws

TEST(Sampling, FrequenciesMatchTheFilteredSoftmax) {
  const std::vector<float> logits = {1.0f, 0.2f, -0.5f, 2.0f, 0.9f, -3.0f, 1.5f, 0.0f};
  SamplingOptions o;
  o.temperature = 0.8f;
  o.top_k = 6;
  o.top_p = 0.95f;
  o.repetition_penalty = 1.3f;
  const Tokens context = {3, 4};
  const std::map<int32_t, double> expected = reference(o, logits, context);
  ASSERT_GE(expected.size(), 4u);
  ASSERT_LT(expected.size(), logits.size());
  Sampler s(o, 2024);
  constexpr int kDraws = 200000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[size_t(s.sample(logits, context))];
  double chi2 = 0.0;
  for (size_t t = 0; t < logits.size(); ++t) {
    auto it = expected.find(int32_t(t));
    if (it == expected.end()) {
      EXPECT_EQ(counts[t], 0) << "filtered token " << t << " was drawn";
      continue;
    }
    const double mean = kDraws * it->second, sd = std::sqrt(mean * (1.0 - it->second));
    EXPECT_LT(std::abs(counts[t] - mean), 5.0 * sd) << "token " << t << ": " << counts[t] << " vs " << mean;
    chi2 += (counts[t] - mean) * (counts[t] - mean) / mean;
  }
  // at most 6 categories: 5 degrees of freedom, P(chi2 > 25) ~ 1.4e-4
  EXPECT_LT(chi2, 25.0);
}

Tokens draw_sequence(uint64_t seed, int n) {
  SamplingOptions o;
  o.top_p = 0.9f;
  Sampler s(o, seed);
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(std::sin(double(i)));
  Tokens out;
  for (int i = 0; i < n; ++i) out.push_back(s.sample(logits, {}));
  return out;
}

TEST(Sampling, SameSeedSameSequenceDifferentSeedDifferent) {
  const Tokens a = draw_sequence(42, 100);
  EXPECT_EQ(a, draw_sequence(42, 100));
  EXPECT_NE(a, draw_sequence(43, 100));
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 3u);  // it really samples
}

}  // namespace
}  // namespace ld::infer
