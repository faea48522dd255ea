// ROUGE against Google's rouge-score published tests (google-research/google-research,
// rouge/rouge_scorer_test.py, with its test data rouge/testdata/*.txt, whose expected values come from
// ROUGE-1.5.5), and the Porter stemmer against NLTK's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "eval/porter_stemmer.hpp"
#include "eval/rouge.hpp"
#include "test_util.hpp"

namespace ld::eval {
namespace {

// rouge/testdata/target.txt and prediction.txt, lines 0 and 1 (read with readlines(), so with "\n").
const std::string kTarget0 =
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion "
    "wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n";
const std::string kTarget1 =
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer "
    "HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw "
    "p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n";
const std::string kPrediction0 =
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n";
const std::string kPrediction1 =
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed "
    "nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n";

// rouge/testdata/pyrouge_files/target_multi.0.txt and prediction_multi.0.txt (whole files).
const std::string kTargetMulti = kTarget0 + kTarget1 +
                                 "NhETebUbBk'er WOvoHMTjSRizKgH'vHiing Xu,hWxfs VkNE QhgKiLHE -HidivzoM.dO anhtion "
                                 "jbLQiSGDTCsuhREebUaKM dv J dVN tmbOT\n"
                                 "vMR HDm,xOAetion D,tion HJtodT.mHl UIv-p VjWH'BdyWjnfGU-OjT aEMdFICyLWfQMtion "
                                 "wEMfdOKing AwkeKbO 'DxqNOHBH qKtVvm OYJl mM\n";
const std::string kPredictionMulti = kPrediction0 + kPrediction1 +
                                     "xfs VkJE QhgKiLHE -HidivzoM.dO anhing jbLQiSGDTCsuhREebUaKM dv J\n"
                                     "VjWH'BdyWjnfGU-OjTNaEMdFICyLWfQMing wEMfdOKijg AwkeKbO 'DxqNO\n";

void expect_score(const RougeScore& s, double precision, double recall, double fmeasure, double tolerance) {
  EXPECT_NEAR(s.precision, precision, tolerance);
  EXPECT_NEAR(s.recall, recall, tolerance);
  EXPECT_NEAR(s.fmeasure, fmeasure, tolerance);
}

// rouge_scorer_test.py: testRouge1, testRouge2, testRougeLConsecutive, testRougeLNonConsecutive,
// testMultipleRougeTypes.
TEST(RougeScore, SmallCases) {
  expect_score(rouge_n("testing one two", "testing", 1), 1, 1.0 / 3, 0.5, 1e-12);
  expect_score(rouge_n("testing one two", "testing one", 2), 1, 0.5, 2.0 / 3, 1e-12);
  expect_score(rouge_l("testing one two", "testing one"), 1, 2.0 / 3, 0.8, 1e-12);
  expect_score(rouge_l("testing one two", "testing two"), 1, 2.0 / 3, 0.8, 1e-12);
  expect_score(rouge_n("testing one two", "testing one", 1), 1, 2.0 / 3, 0.8, 1e-12);
}

// rouge_scorer_test.py: testRougeEmpty.
TEST(RougeScore, EmptyPrediction) {
  RougeScores s = rouge_all("testing one two", "");
  for (const RougeScore* r : {&s.rouge1, &s.rouge2, &s.rougeL, &s.rougeLsum}) expect_score(*r, 0, 0, 0, 0);
}

// rouge_scorer_test.py: testRouge1AgainstRouge155 / ...WithStemming, testRouge2AgainstRouge155 /
// ...WithStemming, testRougeLAgainstRouge155 (5 decimal places there).
TEST(RougeScore, AgainstRouge155) {
  const double tol = 1e-5;
  expect_score(rouge_n(kTarget0, kPrediction0, 1), 0.68750, 0.40741, 0.51163, tol);
  expect_score(rouge_n(kTarget1, kPrediction1, 1), 0.65385, 0.40476, 0.50000, tol);
  expect_score(rouge_n(kTarget0, kPrediction0, 1, true), 0.68750, 0.40741, 0.51163, tol);
  expect_score(rouge_n(kTarget1, kPrediction1, 1, true), 0.69231, 0.42857, 0.52941, tol);

  expect_score(rouge_n(kTarget0, kPrediction0, 2), 0.53333, 0.30769, 0.39024, tol);
  expect_score(rouge_n(kTarget1, kPrediction1, 2), 0.48000, 0.29268, 0.36364, tol);
  expect_score(rouge_n(kTarget0, kPrediction0, 2, true), 0.53333, 0.30769, 0.39024, tol);
  expect_score(rouge_n(kTarget1, kPrediction1, 2, true), 0.48000, 0.29268, 0.36364, tol);

  expect_score(rouge_l(kTarget0, kPrediction0), 0.68750, 0.40741, 0.51163, tol);
  expect_score(rouge_l(kTarget1, kPrediction1), 0.65385, 0.40476, 0.50000, tol);
}

// rouge_scorer_test.py: testRougeLSumAgainstRouge155WithStemming (multi-line files).
TEST(RougeScore, LsumAgainstRouge155WithStemming) {
  expect_score(rouge_lsum(kTargetMulti, kPredictionMulti, true), 0.66667, 0.36538, 0.47205, 1e-5);
}

// rouge_scorer_test.py: testRougeLsum and testSummaryLevelLcs (the union-LCS example of Lin 2004, 3.2).
TEST(RougeScore, LsumUnionLcs) {
  expect_score(rouge_lsum("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5"), 0.4, 0.8, 0.5333, 1e-3);
  EXPECT_NEAR(rouge_lsum("w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5").fmeasure, 0.32 / 0.6, 1e-12);
  expect_score(rouge_lsum("w1 w2 w3 w4 w5", ""), 0, 0, 0, 0);
  expect_score(rouge_lsum("", "w1"), 0, 0, 0, 0);
  expect_score(rouge_lsum("w1 w2 w3 w4 w5", "/"), 0, 0, 0, 0);  // a summary of non-word characters only
  // Without newlines ROUGE-Lsum is ROUGE-L.
  expect_score(rouge_lsum("testing one two", "testing two"), 1, 2.0 / 3, 0.8, 1e-12);
}

TEST(RougeScore, TokenizerLowercasesSplitsAndStems) {
  EXPECT_EQ(rouge_tokens("The QUICK brown-fox, 3rd!", false),
            (std::vector<std::string>{"the", "quick", "brown", "fox", "3rd"}));
  // Only tokens longer than 3 characters are stemmed ("was" and "dogs"... "dogs" has 4).
  EXPECT_EQ(rouge_tokens("Running dogs was happily ponies", true),
            (std::vector<std::string>{"run", "dog", "was", "happili", "poni"}));
  EXPECT_EQ(rouge_tokens("über café", false), (std::vector<std::string>{"ber", "caf"}));  // non-ASCII separates
}

TEST(RougeScore, CorpusMeanAveragesPairs) {
  RougeScores mean = rouge_corpus_mean({"testing one two", "testing one two"}, {"testing", "testing one"});
  EXPECT_NEAR(mean.rouge1.fmeasure, (0.5 + 0.8) / 2, 1e-12);
  EXPECT_NEAR(mean.rouge1.recall, (1.0 / 3 + 2.0 / 3) / 2, 1e-12);
}

// ---- the Porter stemmer against NLTK ----

// Words that reach every rule of the algorithm and the NLTK extensions (Porter's paper examples).
const char* const kRuleWords[] = {
    "caresses", "ponies", "ties", "caress", "cats", "feed", "agreed", "plastered", "bled", "motoring", "sing",
    "conflated", "troubled", "sized", "hopping", "tanned", "falling", "hissing", "fizzed", "failing", "filing",
    "happy", "sky", "skies", "dying", "lying", "tying", "news", "innings", "outings", "cannings", "howe", "proceed",
    "exceed", "succeed", "spied", "tied", "died", "flies", "enjoy", "relational", "conditional", "rational",
    "valenci", "hesitanci", "digitizer", "conformabli", "radicalli", "differentli", "vileli", "analogousli",
    "vietnamization", "predication", "operator", "feudalism", "decisiveness", "hopefulness", "callousness",
    "formaliti", "sensitiviti", "sensibiliti", "triplicate", "formative", "formalize", "electriciti", "electrical",
    "hopeful", "goodness", "revival", "allowance", "inference", "airliner", "gyroscopic", "adjustable",
    "defensible", "irritant", "replacement", "adjustment", "dependent", "adoption", "homologou", "communism",
    "activate", "angulariti", "homologous", "effective", "bowdlerize", "probate", "rate", "cease", "controll",
    "roll", "generously", "archaeology", "analogi", "fulli", "eventualli", "ies", "eed", "ied", "ing", "yyyy",
    "syzygy", "toy", "ivy", "oats", "trees", "troubles", "private", "oaten", "orrery", "by", "at", "a"};

bool python_has_nltk() { return std::system(LIANDAN_PYTHON " -c 'import nltk.stem.porter' >/dev/null 2>&1") == 0; }

TEST(PorterStemmer, MatchesNltkDefaultMode) {
  if (!python_has_nltk()) GTEST_SKIP() << "NLTK missing: apt-get install python3-nltk";
  std::set<std::string> words(std::begin(kRuleWords), std::end(kRuleWords));
  // Every distinct rouge token of Shakespeare, when ../shared has the corpus (about 12k words).
  std::ifstream corpus(LIANDAN_SHARED_DIR "/corpora/tinyshakespeare.txt");
  std::string line;
  while (std::getline(corpus, line))
    for (const std::string& token : rouge_tokens(line, false)) words.insert(token);
  if (corpus.is_open()) {
    EXPECT_GT(words.size(), 10000u);
  }

  test::TempDir dir("liandan_porter");
  {
    std::ofstream out(dir / "words.txt");
    for (const auto& w : words) out << w << "\n";
  }
  const std::string cmd = std::string(LIANDAN_PYTHON " " LIANDAN_SOURCE_DIR "/tests/eval/nltk_porter_ref.py ") +
                          (dir / "words.txt").string() + " " + (dir / "stems.txt").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream stems(dir / "stems.txt");
  size_t compared = 0, differ = 0;
  for (const auto& w : words) {
    std::string expected;
    ASSERT_TRUE(std::getline(stems, expected)) << "NLTK gave fewer stems than words";
    ++compared;
    if (porter_stem(w) != expected && ++differ <= 20)
      ADD_FAILURE() << "'" << w << "': liandan '" << porter_stem(w) << "', NLTK '" << expected << "'";
  }
  EXPECT_EQ(differ, 0u) << "of " << compared << " words";
}

}  // namespace
}  // namespace ld::eval
