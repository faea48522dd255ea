#pragma once
// Corpus BLEU as sacreBLEU 2.x computes it by default: 13a tokenisation, "exp" smoothing, n-grams up
// to 4, clipped counts against the per-n-gram maximum over the references, brevity penalty on the
// corpus totals with the closest reference length per segment (ties: the shorter one). Scores are
// 0-100 like sacreBLEU's. liandan claims compatibility with sacreBLEU kSacreBleuVersion and writes
// that version into the signature.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ld::eval {

inline constexpr const char* kSacreBleuVersion = "2.4.3";

enum class BleuTokenize { k13a, kNone };  // "none": the text is split on whitespace as it is
enum class BleuSmooth { kNone, kFloor, kAddK, kExp };

struct BleuOptions {
  BleuTokenize tokenize = BleuTokenize::k13a;
  BleuSmooth smooth = BleuSmooth::kExp;
  std::optional<double> smooth_value;  // floor: 0.1 and add-k: 1 when not given; unused otherwise
  bool lowercase = false;
  bool effective_order = false;  // stop at the highest order with any hypothesis n-gram (sentence BLEU)
  int max_ngram_order = 4;
};

// Sufficient statistics: summed over segments, so corpora combine by adding them.
struct BleuStats {
  std::vector<int64_t> correct;  // clipped matches per order 1..N
  std::vector<int64_t> total;    // hypothesis n-grams per order
  int64_t sys_len = 0;           // hypothesis tokens
  int64_t ref_len = 0;           // closest reference length, summed
};

struct BleuScore {
  double score = 0;                // 0-100
  std::vector<double> precisions;  // 0-100 per order, after smoothing
  double bp = 0;                   // brevity penalty
  BleuStats stats;
  std::string signature;           // e.g. nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3
};

// Tokenised (and optionally lowercased) as BLEU sees it: sacreBLEU strips trailing whitespace first.
std::vector<std::string> bleu_tokens(const std::string& segment, const BleuOptions& options);

// ref_streams[r][i] is reference r of segment i (every stream as long as hyps). Empty references
// are skipped (a segment may have fewer); a segment with no non-empty reference is an error.
BleuStats bleu_statistics(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams,
                          const BleuOptions& options = {});

// sacreBLEU's BLEU.compute_bleu: the score from statistics, with the options' smoothing.
BleuScore compute_bleu(const BleuStats& stats, const BleuOptions& options = {});

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams,
                      const BleuOptions& options = {});

// nrefs is the number of references per segment, or -1 when it varies ("var").
std::string bleu_signature(const BleuOptions& options, int nrefs);

}  // namespace ld::eval
