// chrF against sacreBLEU's own published test cases (mjpost/sacrebleu test/test_chrf.py).
#include <gtest/gtest.h>

#include "eval/bleu.hpp"
#include "eval/chrf.hpp"
#include "test_util.hpp"

namespace ld::eval {
namespace {

ChrfOptions beta3(bool eps_smoothing) {
  ChrfOptions o;
  o.beta = 3;
  o.eps_smoothing = eps_smoothing;
  return o;
}

struct Case {
  std::vector<std::string> hyps, refs;
  double expected;
};

void expect_cases(const std::vector<Case>& cases, const ChrfOptions& options, double tolerance) {
  for (const Case& c : cases)
    EXPECT_NEAR(corpus_chrf(c.hyps, {c.refs}, options).score, c.expected, tolerance)
        << "hyp '" << c.hyps[0] << "' ref '" << c.refs[0] << "'";
}

// test_chrf.py, test_chrf (test_cases): char_order=6, word_order=0, beta=3, eps_smoothing=True.
TEST(SacreChrf, EpsSmoothingCases) {
  expect_cases({{{"abcdefg"}, {"hijklmnop"}, 0.0},
                {{"a"}, {"b"}, 0.0},
                {{""}, {"b"}, 0.0},
                {{""}, {"ref"}, 0.0},
                {{""}, {"reference"}, 0.0},
                {{"aa"}, {"ab"}, 8.3333},
                {{"a", "b"}, {"a", "c"}, 8.3333},
                {{"a"}, {"a"}, 16.6667},
                {{"a b c"}, {"a b c"}, 50.0},
                {{"a b c"}, {"abc"}, 50.0},
                {{" risk assessment must be made of those who are qualified and expertise in the sector - these are the "
                  "scientists ."},
                 {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the "
                  "scientists ."},
                 63.361730},
                {{" Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. "},
                 {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."},
                 64.1302698},
                {{"Niemand hat die Absicht, eine Mauer zu errichten"},
                 {"Niemand hat die Absicht, eine Mauer zu errichten"},
                 100.0}},
               beta3(true), 1e-4);
}

// test_chrf.py, test_chrf_eff_order (test_cases_effective_order): the default effective-order mode.
TEST(SacreChrf, EffectiveOrderCases) {
  expect_cases({{{"a"}, {"a"}, 100.0},
                {{""}, {"reference"}, 0.0},
                {{"a b c"}, {"a b c"}, 100.0},
                {{"a b c"}, {"abc"}, 100.0},
                {{""}, {"c"}, 0.0},
                {{"a", "b"}, {"a", "c"}, 50.0},
                {{"aa"}, {"ab"}, 25.0}},
               beta3(false), 1e-4);
}

// test_chrf.py, test_chrf_keep_whitespace (test_cases_keep_whitespace): whitespace=True (their
// remove_whitespace=False), beta 3, default smoothing.
TEST(SacreChrf, KeepWhitespaceCases) {
  ChrfOptions o = beta3(false);
  o.whitespace = true;
  expect_cases({{{"Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich."},
                 {"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich."},
                 67.3481606},
                {{"risk assessment must be made of those who are qualified and expertise in the sector - these are the "
                  "scientists ."},
                 {"risk assessment has to be undertaken by those who are qualified and expert in that area - that is the "
                  "scientists ."},
                 65.2414427}},
               o, 1e-4);
}

// test_chrf.py, test_chrf_sentence_level (test_sentence_level_chrf): the defaults (beta 2) with
// eps_smoothing; Czech text, so characters must be code points, not bytes.
TEST(SacreChrf, SentenceLevelCzech) {
  ChrfOptions o;
  o.eps_smoothing = true;
  expect_cases({{{"Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře."},
                 {"Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře."},
                 39.14078509},
                {{"Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři."},
                 {"A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři."},
                 31.22557079},
                {{"Lapali po dechu, jejich životy skončily dřív, než skutečně začaly."},
                 {"Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli."},
                 57.15704367}},
               o, 1e-4);
}

TEST(SacreChrf, DefaultsAndSignature) {
  ChrfOptions o;
  EXPECT_EQ(o.char_order, 6);
  EXPECT_EQ(o.word_order, 0);
  EXPECT_EQ(o.beta, 2);
  ChrfScore s = corpus_chrf({"a b c"}, {{"a b c"}});
  EXPECT_DOUBLE_EQ(s.score, 100.0);
  EXPECT_EQ(s.signature, std::string("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:") + kSacreBleuVersion);
  // Statistics per order for "a b c" (whitespace removed: "abc"): 3 unigrams, 2 bigrams, 1 trigram.
  EXPECT_EQ(std::vector<int64_t>(s.stats.begin(), s.stats.begin() + 9), (std::vector<int64_t>{3, 3, 3, 2, 2, 2, 1, 1, 1}));
}

TEST(SacreChrf, BestReferencePerSegment) {
  // With two references the segment uses the one it matches best: the exact one.
  EXPECT_DOUBLE_EQ(corpus_chrf({"the cat"}, {{"a dog"}, {"the cat"}}).score, 100.0);
  EXPECT_EQ(corpus_chrf({"the cat"}, {{"a dog"}, {"the cat"}}).signature.substr(0, 8), "nrefs:2|");
}

TEST(SacreChrf, WordOrderAddsWordNgrams) {
  ChrfOptions pp;
  pp.word_order = 2;  // chrF++
  EXPECT_DOUBLE_EQ(corpus_chrf({"the cat sat."}, {{"the cat sat."}}, pp).score, 100.0);
  // 6 character orders + 2 word orders, 3 statistics each. Words: "the" "cat" "sat" "." (the final
  // punctuation split off) -> 4 unigrams, 3 bigrams.
  ChrfScore s = corpus_chrf({"the cat sat."}, {{"the cat sat."}}, pp);
  ASSERT_EQ(s.stats.size(), 24u);
  EXPECT_EQ(std::vector<int64_t>(s.stats.begin() + 18, s.stats.end()), (std::vector<int64_t>{4, 4, 4, 3, 3, 3}));
  EXPECT_NE(s.signature.find("|nw:2|"), std::string::npos);
}

}  // namespace
}  // namespace ld::eval
