// Dedup on a planted set: 200 distinct documents, exact copies (case and spacing changed) and near
// copies (5% of characters edited). Exact dedup must remove the copies, MinHash the near copies too,
// and neither may remove a distinct document; precision and recall are printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/dedup.hpp"
#include "data/filters_unicode.hpp"

namespace ld::data {
namespace {

std::string random_word(std::mt19937& rng) {
  static const std::string letters = "abcdefghijklmnopqrstuvwxyz";
  std::uniform_int_distribution<int> len(2, 9), letter(0, 25);
  std::string w;
  for (int i = len(rng); i > 0; --i) w += letters[size_t(letter(rng))];
  return w;
}

std::string random_document(std::mt19937& rng, const std::vector<std::string>& vocab) {
  std::uniform_int_distribution<size_t> pick(0, vocab.size() - 1);
  std::string t;
  for (int i = 0; i < 120; ++i) t += (i ? " " : "") + vocab[pick(rng)];
  return t;
}

// 5% of the characters substituted, deleted or followed by an insertion.
std::string edit_characters(const std::string& text, double rate, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  std::uniform_int_distribution<int> kind(0, 2), letter(0, 25);
  std::string out;
  for (char c : text) {
    if (u(rng) >= rate) {
      out += c;
      continue;
    }
    const char r = char('a' + letter(rng));
    switch (kind(rng)) {
      case 0: out += r; break;                 // substitute
      case 1: break;                           // delete
      default: out += c; out += r; break;      // insert
    }
  }
  return out;
}

std::string vary_case_and_spacing(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == ' ' && i % 7 == 0) {
      out += "  \n";
    } else {
      out += (i % 5 == 0) ? char(std::toupper(static_cast<unsigned char>(c))) : c;
    }
  }
  return "  " + out + "\t";
}

struct Planted {
  std::vector<std::string> docs;
  std::vector<int> kind;  // 0 distinct, 1 exact copy, 2 near copy; copies come after their original
};

Planted planted_set(int distinct, int exact, int near) {
  std::mt19937 rng(1234);
  std::vector<std::string> vocab;
  for (int i = 0; i < 3000; ++i) vocab.push_back(random_word(rng));
  Planted p;
  for (int i = 0; i < distinct; ++i) {
    p.docs.push_back(random_document(rng, vocab));
    p.kind.push_back(0);
  }
  std::uniform_int_distribution<int> src(0, distinct - 1);
  for (int i = 0; i < exact; ++i) {
    p.docs.push_back(vary_case_and_spacing(p.docs[size_t(src(rng))]));
    p.kind.push_back(1);
  }
  for (int i = 0; i < near; ++i) {
    p.docs.push_back(edit_characters(p.docs[size_t(src(rng))], 0.05, rng));
    p.kind.push_back(2);
  }
  return p;
}

struct Score {
  int removed_dup = 0, removed_distinct = 0, kept_dup = 0;
  double precision() const { return removed_dup + removed_distinct == 0 ? 1.0 : double(removed_dup) / (removed_dup + removed_distinct); }
  double recall(int dups) const { return double(removed_dup) / dups; }
};

Score run_dedup(const Planted& p, const DedupOptions& o, int wanted_kind_mask) {
  Deduplicator d(o);
  Score s;
  for (size_t i = 0; i < p.docs.size(); ++i) {
    const bool is_dup = p.kind[i] != 0 && ((wanted_kind_mask >> p.kind[i]) & 1);
    const bool kept = d.offer(d.fingerprint(p.docs[i]));
    if (!kept && (p.kind[i] == 0)) ++s.removed_distinct;
    if (!kept && is_dup) ++s.removed_dup;
    if (kept && is_dup) ++s.kept_dup;
  }
  return s;
}

TEST(DataDedup, ExactRemovesCopiesWithCaseAndSpacingChanges) {
  const Planted p = planted_set(200, 40, 40);
  const Score s = run_dedup(p, {.mode = DedupMode::exact, .threshold = 0.5, .num_perm = 128, .shingle_chars = 5, .seed = 1, .verify = true},
                            /*exact copies*/ 1 << 1);
  std::printf("exact dedup: precision %.3f recall %.3f\n", s.precision(), s.recall(40));
  EXPECT_EQ(s.removed_distinct, 0);
  EXPECT_EQ(s.removed_dup, 40);
}

TEST(DataDedup, MinHashRemovesNearDuplicatesKeepsDistinct) {
  const Planted p = planted_set(200, 40, 40);
  const Score s = run_dedup(p, {.mode = DedupMode::minhash, .threshold = 0.5, .num_perm = 128, .shingle_chars = 5, .seed = 1, .verify = true},
                            (1 << 1) | (1 << 2));
  std::printf("minhash dedup (T=0.5, 128 perm): precision %.3f recall %.3f (%d of 80 duplicates, %d distinct removed)\n",
              s.precision(), s.recall(80), s.removed_dup, s.removed_distinct);
  EXPECT_EQ(s.removed_distinct, 0);
  EXPECT_GE(s.recall(80), 0.95);
}

// Short documents that share a signature line (like fortunes' attributions) have J ~ 0.3: banding
// alone makes many of the 19900 pairs candidates; verification by estimated Jaccard rejects them.
TEST(DataDedup, VerificationRejectsBandCollisionsBelowThreshold) {
  std::mt19937 rng(99);
  std::vector<std::string> vocab;
  for (int i = 0; i < 3000; ++i) vocab.push_back(random_word(rng));
  std::vector<std::string> docs;
  for (int i = 0; i < 200; ++i) {
    std::string t;
    while (t.size() < 40) t += random_word(rng) + " ";
    docs.push_back(t + "\n -- Anonymous, Collected Sayings");
  }
  auto removed = [&](bool verify) {
    Deduplicator d({.mode = DedupMode::minhash, .threshold = 0.5, .num_perm = 128, .shingle_chars = 5, .seed = 1, .verify = verify});
    int n = 0;
    for (const auto& t : docs) n += !d.offer(d.fingerprint(t));
    return n;
  };
  const int without = removed(false), with = removed(true);
  std::printf("shared-line corpus: %d of 200 removed by bands alone, %d with verification\n", without, with);
  EXPECT_GT(without, 5);
  EXPECT_EQ(with, 0);
}

TEST(DataDedup, FirstOccurrenceIsKept) {
  Deduplicator d({.mode = DedupMode::exact, .threshold = 0.5, .num_perm = 128, .shingle_chars = 5, .seed = 1, .verify = true});
  EXPECT_TRUE(d.offer(d.fingerprint("Hello   World")));
  EXPECT_FALSE(d.offer(d.fingerprint("hello world")));
  EXPECT_TRUE(d.offer(d.fingerprint("hello world!")));
  EXPECT_EQ(dedup_normalize(" Ａ  B\n\tc "), "a b c");  // NFKC folds the full-width A
}

// Jaccard of the 5-character shingle sets, computed directly.
double true_jaccard(const std::string& a, const std::string& b) {
  auto shingles = [](const std::string& t) {
    std::set<std::string> s;
    const std::string n = dedup_normalize(t);
    for (size_t i = 0; i + 5 <= n.size(); ++i) s.insert(n.substr(i, 5));
    return s;
  };
  const auto sa = shingles(a), sb = shingles(b);
  size_t inter = 0;
  for (const auto& x : sa) inter += sb.count(x);
  return double(inter) / double(sa.size() + sb.size() - inter);
}

TEST(DataDedup, SignatureEstimatesJaccard) {
  std::mt19937 rng(7);
  const Planted p = planted_set(20, 0, 0);
  Deduplicator d({.mode = DedupMode::minhash, .threshold = 0.5, .num_perm = 256, .shingle_chars = 5, .seed = 3, .verify = true});
  for (double rate : {0.01, 0.05, 0.15, 0.3}) {
    const std::string edited = edit_characters(p.docs[0], rate, rng);
    const double truth = true_jaccard(p.docs[0], edited), est = d.estimated_jaccard(p.docs[0], edited);
    EXPECT_NEAR(est, truth, 0.1) << "edit rate " << rate;
  }
  EXPECT_NEAR(d.estimated_jaccard(p.docs[0], p.docs[1]), true_jaccard(p.docs[0], p.docs[1]), 0.1);
}

TEST(DataDedup, BandsAndRowsPutTheCurveThresholdNearT) {
  for (double t : {0.5, 0.7, 0.85}) {
    const auto [b, r] = minhash_bands_rows(t, 128);
    EXPECT_LE(b * r, 128);
    const double knee = std::pow(1.0 / b, 1.0 / r);  // where 1-(1-s^r)^b rises steepest
    EXPECT_NEAR(knee, t, 0.1) << "b=" << b << " r=" << r;
  }
  const auto [b, r] = minhash_bands_rows(0.5, 128);
  std::printf("T=0.5 -> %d bands x %d rows\n", b, r);
}

TEST(DataDedup, MemoryStaysWithinTheStatedBound) {
  HashSet64 set;
  std::mt19937_64 rng(5);
  for (int n = 1; n <= 100000; ++n) {
    set.insert(rng());
    if (n >= 512) {
      ASSERT_LE(set.memory_bytes(), size_t(n) * 32) << n;
    }
  }
  EXPECT_EQ(set.size(), 100000u);
}

}  // namespace
}  // namespace ld::data
