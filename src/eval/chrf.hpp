#pragma once
// chrF (Popović 2015) and chrF++ as sacreBLEU 2.x computes them (sacrebleu/metrics/chrf.py): character
// n-grams up to char_order over each segment with whitespace removed, word n-grams up to word_order
// (0 by default; 2 is chrF++), statistics summed over the corpus, then the F-beta of the averaged
// precision and recall. With several references a segment takes the statistics of the reference
// with the best sentence-level score. Scores are 0-100.
#include <cstdint>
#include <string>
#include <vector>

namespace ld::eval {

struct ChrfOptions {
  int char_order = 6;
  int word_order = 0;
  double beta = 2;
  bool lowercase = false;
  bool whitespace = false;     // keep whitespace inside character n-grams
  bool eps_smoothing = false;  // chrF++.py / NLTK style; default: average only orders that occur
};

struct ChrfScore {
  double score = 0;  // 0-100
  std::vector<int64_t> stats;  // per order (chars first, then words): hyp n-grams, ref n-grams, matches
  std::string signature;       // e.g. nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3
};

// ref_streams[r][i] is reference r of segment i.
ChrfScore corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams,
                      const ChrfOptions& options = {});

// The score of summed statistics (3 numbers per order, chars first).
double chrf_from_stats(const std::vector<int64_t>& stats, const ChrfOptions& options);

std::string chrf_signature(const ChrfOptions& options, int nrefs);

}  // namespace ld::eval
