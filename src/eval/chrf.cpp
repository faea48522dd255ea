#include "eval/chrf.hpp"

#include <set>
#include <string_view>

#include "core/error.hpp"
#include "eval/bleu.hpp"
#include "eval/ngrams.hpp"
#include "eval/unicode_text.hpp"

namespace ld::eval {

namespace {

// string.punctuation, which chrF++ splits off the start or end of a word.
bool is_ascii_punct(std::string_view c) {
  static const std::string_view kPuncts = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  return c.size() == 1 && kPuncts.find(c[0]) != std::string_view::npos;
}

// chrF's _remove_punctuation: one punctuation character is split off the end of each word, or else
// off its start ("(hi)" becomes "(hi" and ")", as in sacreBLEU).
std::vector<std::string> words_for_chrf(const std::string& segment) {
  std::vector<std::string> words;
  for (const std::string& w : split_whitespace(segment)) {
    std::vector<std::string_view> chars = utf8_characters(w);
    if (chars.size() <= 1) {
      words.push_back(w);
    } else if (is_ascii_punct(chars.back())) {
      words.push_back(w.substr(0, w.size() - 1));
      words.emplace_back(chars.back());
    } else if (is_ascii_punct(chars.front())) {
      words.emplace_back(chars.front());
      words.push_back(w.substr(1));
    } else {
      words.push_back(w);
    }
  }
  return words;
}

// All n-gram counters of a segment: char orders 1..char_order, then word orders 1..word_order.
std::vector<NgramCounts> segment_ngrams(const std::string& raw, const ChrfOptions& options) {
  std::string segment = options.lowercase ? to_lower(raw) : raw;
  std::string chars_text;
  if (options.whitespace) {
    chars_text = segment;
  } else {
    for (const std::string& w : split_whitespace(segment)) chars_text += w;
  }
  std::vector<std::string_view> chars = utf8_characters(chars_text);
  std::vector<NgramCounts> all;
  for (int n = 1; n <= options.char_order; ++n) all.push_back(char_ngrams(chars, n));
  if (options.word_order > 0) {
    std::vector<std::string> words = words_for_chrf(segment);
    for (int n = 1; n <= options.word_order; ++n) all.push_back(word_ngrams(words, n));
  }
  return all;
}

std::vector<int64_t> match_statistics(const std::vector<NgramCounts>& hyp, const std::vector<NgramCounts>& ref) {
  std::vector<int64_t> stats;
  for (size_t i = 0; i < hyp.size(); ++i) {
    // A hypothesis n-gram count only counts when the reference has n-grams of that order at all.
    stats.push_back(ref[i].empty() ? 0 : total_count(hyp[i]));
    stats.push_back(total_count(ref[i]));
    stats.push_back(clipped_matches(hyp[i], ref[i]));
  }
  return stats;
}

}  // namespace

double chrf_from_stats(const std::vector<int64_t>& stats, const ChrfOptions& options) {
  const size_t order = static_cast<size_t>(options.char_order + options.word_order);
  LD_CHECK(stats.size() == 3 * order, "chrf: expected ", 3 * order, " statistics, got ", stats.size());
  const double eps = 1e-16, factor = options.beta * options.beta;
  double eps_score = 0, avg_prec = 0, avg_rec = 0;
  int effective_order = 0;
  for (size_t i = 0; i < order; ++i) {
    const double n_hyp = double(stats[3 * i]), n_ref = double(stats[3 * i + 1]), n_match = double(stats[3 * i + 2]);
    const double prec = n_hyp > 0 ? n_match / n_hyp : eps;
    const double rec = n_ref > 0 ? n_match / n_ref : eps;
    const double denom = factor * prec + rec;
    eps_score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
    if (n_hyp > 0 && n_ref > 0) {
      avg_prec += prec;
      avg_rec += rec;
      ++effective_order;
    }
  }
  if (options.eps_smoothing) return 100 * eps_score / double(order);
  if (effective_order == 0) return 0.0;
  avg_prec /= effective_order;
  avg_rec /= effective_order;
  if (avg_prec + avg_rec == 0) return 0.0;
  return 100 * (1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec);
}

ChrfScore corpus_chrf(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams,
                      const ChrfOptions& options) {
  LD_CHECK(!ref_streams.empty(), "chrf: no reference stream given");
  LD_CHECK(options.char_order >= 0 && options.word_order >= 0 && options.char_order + options.word_order > 0,
           "chrf: the character and word orders must be non-negative and not both 0");
  for (size_t r = 0; r < ref_streams.size(); ++r)
    LD_CHECK(ref_streams[r].size() == hyps.size(), "chrf: reference stream ", r + 1, " has ", ref_streams[r].size(),
             " segments but there are ", hyps.size(), " hypotheses");
  ChrfScore result;
  result.stats.assign(3 * size_t(options.char_order + options.word_order), 0);
  std::set<size_t> nrefs;
  for (size_t i = 0; i < hyps.size(); ++i) {
    std::vector<NgramCounts> hyp = segment_ngrams(hyps[i], options);
    std::vector<int64_t> best;
    double best_score = -1;
    size_t present = 0;
    for (const auto& stream : ref_streams) {
      if (stream[i].empty()) continue;  // fewer references for this segment
      ++present;
      std::vector<int64_t> stats = match_statistics(hyp, segment_ngrams(stream[i], options));
      double score = chrf_from_stats(stats, options);
      if (score > best_score) {
        best_score = score;
        best = std::move(stats);
      }
    }
    LD_CHECK(present > 0, "chrf: segment ", i + 1, " has no non-empty reference");
    nrefs.insert(present);
    for (size_t k = 0; k < best.size(); ++k) result.stats[k] += best[k];
  }
  result.score = chrf_from_stats(result.stats, options);
  result.signature = chrf_signature(options, nrefs.size() == 1 ? int(*nrefs.begin()) : -1);
  return result;
}

std::string chrf_signature(const ChrfOptions& options, int nrefs) {
  std::string sig = "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs));
  sig += std::string("|case:") + (options.lowercase ? "lc" : "mixed");
  sig += std::string("|eff:") + (options.eps_smoothing ? "no" : "yes");
  sig += "|nc:" + std::to_string(options.char_order);
  sig += "|nw:" + std::to_string(options.word_order);
  sig += std::string("|space:") + (options.whitespace ? "yes" : "no");
  sig += std::string("|version:") + kSacreBleuVersion;
  return sig;
}

}  // namespace ld::eval
