// BLEU against sacreBLEU's own published test cases and against NLTK's corpus_bleu.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "eval/bleu.hpp"
#include "eval/tokenize_13a.hpp"
#include "test_util.hpp"

namespace ld::eval {
namespace {

using Streams = std::vector<std::vector<std::string>>;

BleuOptions raw_options(double floor_value) {
  // sacrebleu.compat.raw_corpus_bleu: floor smoothing, tokenize 'none', effective order.
  BleuOptions o;
  o.tokenize = BleuTokenize::kNone;
  o.smooth = BleuSmooth::kFloor;
  o.smooth_value = floor_value;
  o.effective_order = true;
  return o;
}

// The README example of sacreBLEU, used by mjpost/sacrebleu test/test_bleu.py (_refs, _hyps).
const std::vector<std::string> kHyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
const Streams kRefs = {{"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
                       {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."}};

// mjpost/sacrebleu test/test_bleu.py, test_corpus_bleu (test_corpus_bleu_cases).
TEST(SacreBleu, CorpusBleuPublishedCases) {
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs).score, 48.530827, 1e-6);  // default settings: 13a + exp
  EXPECT_EQ(corpus_bleu({"", "", ""}, kRefs).score, 0.0);        // empty hypotheses are kept
  BleuOptions none;
  none.tokenize = BleuTokenize::kNone;
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs, none).score, 49.1919566, 1e-6);
  BleuOptions no_smooth;
  no_smooth.smooth = BleuSmooth::kNone;
  EXPECT_NEAR(corpus_bleu(kHyps, kRefs, no_smooth).score, 48.530827, 1e-6);
}

// mjpost/sacrebleu test/test_bleu.py, test_max_ngram_order (expected as "%.2f" strings there).
TEST(SacreBleu, MaxNgramOrder) {
  const char* expected[] = {"77.65", "60.50", "53.93", "48.53", "46.14", "43.28"};
  for (int order = 1; order <= 6; ++order) {
    BleuOptions o;
    o.max_ngram_order = order;
    char got[32];
    std::snprintf(got, sizeof got, "%.2f", corpus_bleu(kHyps, kRefs, o).score);
    EXPECT_EQ(std::string(got), expected[order - 1]) << "order " << order;
  }
}

// mjpost/sacrebleu test/test_bleu.py: test_raw_bleu, test_effective_order, test_statistics, test_offset.
TEST(SacreBleu, RawBleuEffectiveOrderAndOffsets) {
  const BleuOptions raw = raw_options(0.01);
  EXPECT_EQ(corpus_bleu({"this is a test", "another test"}, {{"ref1", "ref2"}}, raw).score, 0.0);  // #141
  EXPECT_NEAR(corpus_bleu({"this is a test"}, {{"this is a test"}}, raw).score / 100, 1.0, 1e-8);
  EXPECT_NEAR(corpus_bleu({"this is a fest"}, {{"this is a test"}}, raw).score / 100, 0.223606797749979, 1e-8);

  EXPECT_NEAR(corpus_bleu({"test"}, {{"a test"}}, raw).score / 100, 0.3678794411714425, 1e-8);
  EXPECT_NEAR(corpus_bleu({"a test"}, {{"a test"}}, raw).score / 100, 1.0, 1e-8);
  EXPECT_NEAR(corpus_bleu({"a little test"}, {{"a test"}}, raw).score / 100, 0.03218297948685433, 1e-8);

  const std::vector<std::string> hyp = {"am I am a character sequence"};
  const Streams ref = {{"I am a symbol string sequence a a"}};
  BleuScore s = corpus_bleu(hyp, ref, raw);
  EXPECT_EQ(s.stats.correct, (std::vector<int64_t>{4, 2, 1, 0}));
  EXPECT_EQ(s.stats.total, (std::vector<int64_t>{6, 5, 4, 3}));
  EXPECT_EQ(corpus_bleu(hyp, ref, raw_options(0.0)).score, 0.0);
  BleuOptions default_floor = raw_options(0.1);
  default_floor.smooth_value.reset();  // sacreBLEU's default floor value, 0.1
  EXPECT_NEAR(corpus_bleu(hyp, ref, default_floor).score / 100, 0.1555722182, 1e-8);
}

// mjpost/sacrebleu test/test_bleu.py: test_scoring and test_degenerate_statistics (compute_bleu).
TEST(SacreBleu, ComputeFromStatistics) {
  BleuOptions none;
  none.smooth = BleuSmooth::kNone;
  EXPECT_NEAR(compute_bleu({{9, 7, 5, 3}, {10, 8, 6, 4}, 11, 11}, none).score / 100, 0.8375922397, 1e-8);

  struct Degenerate {
    BleuStats stats;
    double floor;
  };
  const Degenerate cases[] = {{{{0, 0, 0, 0}, {4, 4, 2, 1}, 0, 1}, 0.0},   {{{0, 0, 0, 0}, {10, 11, 12, 0}, 14, 10}, 0.0},
                              {{{0, 0, 0, 0}, {0, 0, 0, 0}, 0, 0}, 0.0},   {{{6, 5, 4, 0}, {6, 5, 4, 3}, 6, 6}, 0.0},
                              {{{0, 0, 0, 0}, {0, 0, 0, 0}, 0, 0}, 0.1},   {{{0, 0, 0, 0}, {0, 0, 0, 0}, 1, 5}, 0.01}};
  for (const auto& c : cases) {
    BleuOptions floor;
    floor.smooth = BleuSmooth::kFloor;
    floor.smooth_value = c.floor;
    EXPECT_EQ(compute_bleu(c.stats, floor).score, 0.0);
  }
}

// mjpost/sacrebleu test/test_sentence_bleu.py (example from sacreBLEU issue #98): sentence BLEU is
// corpus BLEU of one segment with effective order; every smoothing method, 13a and none.
TEST(SacreBleu, SentenceBleuSmoothingMethods) {
  const std::string ref = "producţia de zahăr brut se exprimă în zahăr alb;";
  const std::string sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
  struct Case {
    BleuSmooth smooth;
    std::optional<double> value;
    BleuTokenize tok;
    double expected;
  };
  const Case cases[] = {{BleuSmooth::kExp, std::nullopt, BleuTokenize::k13a, 8.493},
                        {BleuSmooth::kNone, std::nullopt, BleuTokenize::k13a, 0.0},
                        {BleuSmooth::kFloor, std::nullopt, BleuTokenize::k13a, 4.51688},
                        {BleuSmooth::kFloor, 0.1, BleuTokenize::k13a, 4.51688},
                        {BleuSmooth::kFloor, 0.5, BleuTokenize::k13a, 10.10},
                        {BleuSmooth::kAddK, std::nullopt, BleuTokenize::k13a, 14.882},
                        {BleuSmooth::kAddK, 1.0, BleuTokenize::k13a, 14.882},
                        {BleuSmooth::kAddK, 2.0, BleuTokenize::k13a, 21.389},
                        {BleuSmooth::kExp, std::nullopt, BleuTokenize::kNone, 7.347}};
  for (const Case& c : cases) {
    BleuOptions o;
    o.smooth = c.smooth;
    o.smooth_value = c.value;
    o.tokenize = c.tok;
    o.effective_order = true;
    EXPECT_NEAR(corpus_bleu({sys}, {{ref}}, o).score, c.expected, 1e-3) << bleu_signature(o, 1);
  }
  // test_api_sentence_bleu_zero (sacreBLEU #141): no match at all is 0 whatever the smoothing.
  for (BleuSmooth smooth : {BleuSmooth::kExp, BleuSmooth::kNone, BleuSmooth::kFloor, BleuSmooth::kAddK}) {
    BleuOptions o;
    o.smooth = smooth;
    o.effective_order = true;
    EXPECT_EQ(corpus_bleu({"this is a cat"}, {{"okay thanks"}}, o).score, 0.0);
  }
}

TEST(Tokenize13a, PunctuationDigitsAndEntities) {
  // Periods and commas split off unless inside a number; a dash splits after a digit.
  EXPECT_EQ(tokenize_13a("Hello, world. It costs 1,000.50 dollars."), "Hello , world . It costs 1,000.50 dollars .");
  EXPECT_EQ(tokenize_13a("It wasn't (really) 5-6 &quot;x&quot; &amp; y"),
            "It wasn't ( really ) 5 - 6 \" x \" & y");
  EXPECT_EQ(tokenize_13a("a..b"), "a . . b");  // re.sub never reuses the first "." for the second
  EXPECT_EQ(tokenize_13a("e-mail<skipped> über."), "e-mail über .");
  EXPECT_EQ(tokenize_13a(""), "");
}

TEST(SacreBleu, SignatureNamesTheClaimedVersion) {
  EXPECT_EQ(corpus_bleu(kHyps, kRefs).signature,
            std::string("nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:") + kSacreBleuVersion);
  BleuOptions o;
  o.lowercase = true;
  o.smooth = BleuSmooth::kFloor;
  o.tokenize = BleuTokenize::kNone;
  EXPECT_EQ(bleu_signature(o, -1), std::string("nrefs:var|case:lc|eff:no|tok:none|smooth:floor[0.10]|version:") +
                                       kSacreBleuVersion);
  // A segment with one of its two references empty: the number of references varies.
  EXPECT_EQ(corpus_bleu({"a b", "c d"}, {{"a b", "c d"}, {"a b", ""}}).signature.substr(0, 10), "nrefs:var|");
}

TEST(SacreBleu, ClosestReferenceLengthPrefersTheShorterOnTies) {
  // Hypothesis of 4 tokens, references of 3 and 5: both 1 away, the shorter (3) is used, so no penalty.
  BleuOptions none;
  none.tokenize = BleuTokenize::kNone;
  BleuScore s = corpus_bleu({"a b c d"}, {{"a b c"}, {"a b c d e"}}, none);
  EXPECT_EQ(s.stats.ref_len, 3);
  EXPECT_EQ(s.bp, 1.0);
}

TEST(SacreBleu, BadStreamsAreErrors) {
  test::expect_mentions(test::error_message([] { corpus_bleu({"a"}, {{"a", "b"}}); }), {"2 segments", "1 hypotheses"});
  test::expect_mentions(test::error_message([] { corpus_bleu({"a"}, {{""}}); }), {"segment 1", "no non-empty reference"});
}

// ---- NLTK's corpus_bleu on pre-tokenised text ----

bool python_has_nltk() {
  return std::system(LIANDAN_PYTHON " -c 'import nltk.translate.bleu_score' >/dev/null 2>&1") == 0;
}

// A corpus where each segment has at least 4 tokens (NLTK and sacreBLEU then count the same n-grams)
// and two references that differ from the hypothesis by a few substitutions and deletions.
struct TokenCorpus {
  std::vector<std::vector<std::string>> hyps;
  std::vector<std::vector<std::vector<std::string>>> refs;  // refs[i][r]
};

TokenCorpus make_corpus(uint32_t seed, int segments, bool lose_all_four_grams) {
  std::mt19937 rng(seed);
  const std::vector<std::string> vocab = {"the", "cat", "sat", "on", "mat", ",", ".", "dog", "ran", "über", "to", "a"};
  auto pick = [&](size_t n) { return size_t(rng() % n); };
  TokenCorpus c;
  for (int i = 0; i < segments; ++i) {
    std::vector<std::string> ref;
    for (size_t n = 6 + pick(10); n > 0; --n) ref.push_back(vocab[pick(vocab.size())]);
    std::vector<std::string> hyp;
    if (lose_all_four_grams) {
      for (size_t k = 0; k < ref.size(); ++k) hyp.push_back(k % 3 == 2 ? "zz" + std::to_string(k) : ref[k]);
    } else {
      for (const auto& w : ref)
        if (pick(8) != 0) hyp.push_back(pick(6) == 0 ? vocab[pick(vocab.size())] : w);
      while (hyp.size() < 4) hyp.push_back(vocab[pick(vocab.size())]);
    }
    std::vector<std::string> ref2 = ref;
    ref2.erase(ref2.begin() + long(pick(ref2.size())));
    c.hyps.push_back(hyp);
    c.refs.push_back({ref, ref2});
  }
  return c;
}

std::string join(const std::vector<std::string>& tokens) {
  std::string s;
  for (const auto& t : tokens) s += (s.empty() ? "" : " ") + t;
  return s;
}

// NLTK's two numbers (no smoothing, method3) for a corpus.
std::pair<double, double> nltk_bleu(const TokenCorpus& c, const test::TempDir& dir) {
  nlohmann::json data = {{"hyps", c.hyps}, {"refs", c.refs}};
  std::ofstream(dir / "data.json") << data.dump();
  const std::string cmd = std::string(LIANDAN_PYTHON " " LIANDAN_SOURCE_DIR "/tests/eval/nltk_bleu_ref.py ") +
                          (dir / "data.json").string() + " " + (dir / "nltk.txt").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(dir / "nltk.txt");
  double plain = -1, smoothed = -1;
  in >> plain >> smoothed;
  return {plain, smoothed};
}

BleuScore liandan_bleu(const TokenCorpus& c, BleuSmooth smooth) {
  std::vector<std::string> hyps;
  Streams streams(2);
  for (size_t i = 0; i < c.hyps.size(); ++i) {
    hyps.push_back(join(c.hyps[i]));
    for (size_t r = 0; r < 2; ++r) streams[r].push_back(join(c.refs[i][r]));
  }
  BleuOptions o;
  o.tokenize = BleuTokenize::kNone;
  o.smooth = smooth;
  return corpus_bleu(hyps, streams, o);
}

TEST(BleuVsNltk, CorpusBleuWithoutAndWithSmoothing) {
  if (!python_has_nltk()) GTEST_SKIP() << "NLTK missing: apt-get install python3-nltk";
  test::TempDir dir("liandan_bleu_nltk");
  for (uint32_t seed : {1u, 2u, 3u}) {
    TokenCorpus c = make_corpus(seed, 25, false);
    BleuScore plain = liandan_bleu(c, BleuSmooth::kNone);
    for (int64_t correct : plain.stats.correct) ASSERT_GT(correct, 0) << "every order must match for NLTK's plain BLEU";
    auto [nltk_plain, nltk_smoothed] = nltk_bleu(c, dir);
    EXPECT_NEAR(plain.score / 100, nltk_plain, 1e-9) << "seed " << seed;
    // With matches at every order, smoothing changes nothing in either implementation.
    EXPECT_NEAR(liandan_bleu(c, BleuSmooth::kExp).score / 100, nltk_smoothed, 1e-9) << "seed " << seed;
    EXPECT_GT(plain.score, 5.0);
    EXPECT_LT(plain.score, 95.0);
  }
}

TEST(BleuVsNltk, ExpSmoothingIsNltkMethod3) {
  if (!python_has_nltk()) GTEST_SKIP() << "NLTK missing: apt-get install python3-nltk";
  test::TempDir dir("liandan_bleu_nltk");
  // Every third token replaced by a word found nowhere else: no 3-gram or 4-gram survives.
  TokenCorpus c = make_corpus(7, 10, true);
  BleuScore exp = liandan_bleu(c, BleuSmooth::kExp);
  ASSERT_EQ(exp.stats.correct[3], 0);
  ASSERT_GT(exp.stats.correct[0], 0);
  auto [nltk_plain, nltk_smoothed] = nltk_bleu(c, dir);
  EXPECT_EQ(liandan_bleu(c, BleuSmooth::kNone).score, 0.0);
  EXPECT_NEAR(nltk_plain, 0.0, 1e-12);
  EXPECT_NEAR(exp.score / 100, nltk_smoothed, 1e-9);
  EXPECT_GT(exp.score, 0.0);
}

}  // namespace
}  // namespace ld::eval
