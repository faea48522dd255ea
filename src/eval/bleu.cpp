#include "eval/bleu.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "core/error.hpp"
#include "eval/ngrams.hpp"
#include "eval/tokenize_13a.hpp"
#include "eval/unicode_text.hpp"

namespace ld::eval {

namespace {

double default_smooth_value(BleuSmooth smooth) { return smooth == BleuSmooth::kFloor ? 0.1 : 1.0; }

// sacreBLEU's my_log: log(0) is a large negative number instead of -inf, so exp() of it gives 0.
double bleu_log(double x) { return x == 0 ? -9999999999.0 : std::log(x); }

// Among the reference lengths, the one closest to the hypothesis length; ties go to the shorter one.
int64_t closest_ref_len(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best_diff = -1, best_len = -1;
  for (int64_t len : ref_lens) {
    int64_t diff = std::llabs(hyp_len - len);
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = len;
    } else if (diff == best_diff && len < best_len) {
      best_len = len;
    }
  }
  return best_len;
}

void check_streams(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams) {
  LD_CHECK(!ref_streams.empty(), "bleu: no reference stream given");
  for (size_t r = 0; r < ref_streams.size(); ++r)
    LD_CHECK(ref_streams[r].size() == hyps.size(), "bleu: reference stream ", r + 1, " has ", ref_streams[r].size(),
             " segments but there are ", hyps.size(), " hypotheses");
}

}  // namespace

std::vector<std::string> bleu_tokens(const std::string& segment, const BleuOptions& options) {
  std::string text = options.lowercase ? to_lower(segment) : segment;
  std::string stripped(rstrip_whitespace(text));
  if (options.tokenize == BleuTokenize::k13a) stripped = tokenize_13a(stripped);
  return split_whitespace(stripped);
}

BleuStats bleu_statistics(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams,
                          const BleuOptions& options) {
  check_streams(hyps, ref_streams);
  const int order = options.max_ngram_order;
  LD_CHECK(order >= 1, "bleu: max n-gram order must be at least 1, got ", order);
  BleuStats stats;
  stats.correct.assign(order, 0);
  stats.total.assign(order, 0);
  for (size_t i = 0; i < hyps.size(); ++i) {
    std::vector<std::vector<std::string>> refs;
    for (const auto& stream : ref_streams)
      if (!stream[i].empty()) refs.push_back(bleu_tokens(stream[i], options));
    LD_CHECK(!refs.empty(), "bleu: segment ", i + 1, " has no non-empty reference");
    std::vector<std::string> hyp = bleu_tokens(hyps[i], options);

    std::vector<int64_t> ref_lens;
    for (const auto& ref : refs) ref_lens.push_back(static_cast<int64_t>(ref.size()));
    stats.sys_len += static_cast<int64_t>(hyp.size());
    stats.ref_len += closest_ref_len(static_cast<int64_t>(hyp.size()), ref_lens);

    for (int n = 1; n <= order; ++n) {
      NgramCounts max_ref;  // per n-gram, the largest count in any one reference
      for (const auto& ref : refs)
        for (const auto& [ngram, count] : word_ngrams(ref, n)) max_ref[ngram] = std::max(max_ref[ngram], count);
      NgramCounts hyp_ngrams = word_ngrams(hyp, n);
      stats.correct[n - 1] += clipped_matches(hyp_ngrams, max_ref);
      stats.total[n - 1] += total_count(hyp_ngrams);
    }
  }
  return stats;
}

BleuScore compute_bleu(const BleuStats& stats, const BleuOptions& options) {
  const size_t order = stats.correct.size();
  LD_CHECK(order > 0 && stats.total.size() == order, "bleu: statistics need as many totals as matches, got ",
           stats.correct.size(), " and ", stats.total.size());
  const double smooth_value = options.smooth_value.value_or(default_smooth_value(options.smooth));
  BleuScore result;
  result.stats = stats;
  result.precisions.assign(order, 0.0);
  if (stats.sys_len < stats.ref_len)
    result.bp = stats.sys_len > 0 ? std::exp(1.0 - double(stats.ref_len) / double(stats.sys_len)) : 0.0;
  else
    result.bp = 1.0;
  // No match at any order: 0, whatever the smoothing (sacreBLEU #141).
  if (std::all_of(stats.correct.begin(), stats.correct.end(), [](int64_t c) { return c == 0; })) return result;

  double smooth_mteval = 1.0;
  size_t effective_order = order;
  for (size_t n = 1; n <= order; ++n) {
    double correct = double(stats.correct[n - 1]), total = double(stats.total[n - 1]);
    if (options.smooth == BleuSmooth::kAddK && n > 1) {
      correct += smooth_value;
      total += smooth_value;
    }
    if (total == 0) break;
    if (options.effective_order) effective_order = n;
    double& p = result.precisions[n - 1];
    if (correct == 0) {
      if (options.smooth == BleuSmooth::kExp) {
        smooth_mteval *= 2;
        p = 100.0 / (smooth_mteval * total);
      } else if (options.smooth == BleuSmooth::kFloor) {
        p = 100.0 * smooth_value / total;
      }
    } else {
      p = 100.0 * correct / total;
    }
  }
  double log_sum = 0;
  for (size_t n = 0; n < effective_order; ++n) log_sum += bleu_log(result.precisions[n]);
  result.score = result.bp * std::exp(log_sum / double(effective_order));
  return result;
}

BleuScore corpus_bleu(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& ref_streams,
                      const BleuOptions& options) {
  BleuScore score = compute_bleu(bleu_statistics(hyps, ref_streams, options), options);
  std::set<size_t> nrefs;
  for (size_t i = 0; i < hyps.size(); ++i) {
    size_t present = 0;
    for (const auto& stream : ref_streams) present += stream[i].empty() ? 0 : 1;
    nrefs.insert(present);
  }
  score.signature = bleu_signature(options, nrefs.size() == 1 ? int(*nrefs.begin()) : -1);
  return score;
}

std::string bleu_signature(const BleuOptions& options, int nrefs) {
  std::string smooth;
  switch (options.smooth) {
    case BleuSmooth::kNone: smooth = "none"; break;
    case BleuSmooth::kExp: smooth = "exp"; break;
    case BleuSmooth::kFloor:
    case BleuSmooth::kAddK: {
      char value[32];
      std::snprintf(value, sizeof value, "[%.2f]", options.smooth_value.value_or(default_smooth_value(options.smooth)));
      smooth = std::string(options.smooth == BleuSmooth::kFloor ? "floor" : "add-k") + value;
      break;
    }
  }
  std::string sig = "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs));
  sig += std::string("|case:") + (options.lowercase ? "lc" : "mixed");
  sig += std::string("|eff:") + (options.effective_order ? "yes" : "no");
  sig += std::string("|tok:") + (options.tokenize == BleuTokenize::k13a ? "13a" : "none");
  sig += "|smooth:" + smooth;
  sig += std::string("|version:") + kSacreBleuVersion;
  return sig;
}

}  // namespace ld::eval
