#include "eval/rouge.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "core/error.hpp"
#include "eval/ngrams.hpp"
#include "eval/porter_stemmer.hpp"

namespace ld::eval {

namespace {

bool is_token_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// Python's str.lower() only maps ASCII letters to [a-z]... and two non-ASCII letters: U+0130 (İ) lowers
// to "i" + U+0307, and U+212A (Kelvin sign) to "k". Everything else non-ASCII becomes a separator.
std::string lower_for_rouge(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == 0xC4 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xB0) {  // U+0130
      out += "i ";
      ++i;
    } else if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x84 &&
               static_cast<unsigned char>(text[i + 2]) == 0xAA) {  // U+212A
      out += 'k';
      i += 2;
    } else {
      out += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : char(c);
    }
  }
  return out;
}

double fmeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

RougeScore make_score(double hits, double prediction_total, double target_total) {
  RougeScore s;
  s.precision = hits / prediction_total;
  s.recall = hits / target_total;
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

using Table = std::vector<std::vector<int>>;

Table lcs_table(const std::vector<std::string>& ref, const std::vector<std::string>& can) {
  Table t(ref.size() + 1, std::vector<int>(can.size() + 1, 0));
  for (size_t i = 1; i <= ref.size(); ++i)
    for (size_t j = 1; j <= can.size(); ++j)
      t[i][j] = ref[i - 1] == can[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
  return t;
}

// Indices into ref of one LCS, read back the way rouge-score's _backtrack_norec does (the choice
// matters for the union LCS).
std::vector<size_t> lcs_indices(const std::vector<std::string>& ref, const std::vector<std::string>& can) {
  Table t = lcs_table(ref, can);
  std::vector<size_t> indices;
  size_t i = ref.size(), j = can.size();
  while (i > 0 && j > 0) {
    if (ref[i - 1] == can[j - 1]) {
      indices.push_back(i - 1);
      --i;
      --j;
    } else if (t[i][j - 1] > t[i - 1][j]) {
      --j;
    } else {
      --i;
    }
  }
  std::reverse(indices.begin(), indices.end());
  return indices;
}

std::vector<std::string> non_empty_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

std::vector<std::string> rouge_tokens(const std::string& text, bool use_stemmer) {
  std::string lowered = lower_for_rouge(text);
  std::vector<std::string> tokens;
  std::string current;
  auto flush = [&] {
    if (current.empty()) return;
    tokens.push_back(use_stemmer && current.size() > 3 ? porter_stem(current) : current);
    current.clear();
  };
  for (char c : lowered) {
    if (is_token_char(c))
      current += c;
    else
      flush();
  }
  flush();
  return tokens;
}

RougeScore rouge_n(const std::string& target, const std::string& prediction, int n, bool use_stemmer) {
  LD_CHECK(n >= 1, "rouge: ROUGE-N needs n >= 1, got ", n);
  NgramCounts target_ngrams = word_ngrams(rouge_tokens(target, use_stemmer), n);
  NgramCounts prediction_ngrams = word_ngrams(rouge_tokens(prediction, use_stemmer), n);
  const double hits = double(clipped_matches(target_ngrams, prediction_ngrams));
  return make_score(hits, double(std::max<int64_t>(total_count(prediction_ngrams), 1)),
                    double(std::max<int64_t>(total_count(target_ngrams), 1)));
}

RougeScore rouge_l(const std::string& target, const std::string& prediction, bool use_stemmer) {
  std::vector<std::string> t = rouge_tokens(target, use_stemmer), p = rouge_tokens(prediction, use_stemmer);
  if (t.empty() || p.empty()) return {};
  const double lcs = lcs_table(t, p)[t.size()][p.size()];
  return make_score(lcs, double(p.size()), double(t.size()));
}

RougeScore rouge_lsum(const std::string& target, const std::string& prediction, bool use_stemmer) {
  std::vector<std::vector<std::string>> refs, cans;
  for (const std::string& line : non_empty_lines(target)) refs.push_back(rouge_tokens(line, use_stemmer));
  for (const std::string& line : non_empty_lines(prediction)) cans.push_back(rouge_tokens(line, use_stemmer));
  size_t m = 0, n = 0;
  std::unordered_map<std::string, int64_t> ref_counts, can_counts;
  for (const auto& s : refs)
    for (const auto& tok : s) ++m, ++ref_counts[tok];
  for (const auto& s : cans)
    for (const auto& tok : s) ++n, ++can_counts[tok];
  if (m == 0 || n == 0) return {};

  // Each reference sentence: the union of its LCS positions with every candidate sentence; a token
  // counts as a hit only while both sides still have an unused copy (ROUGE-1.5.5's no double counting).
  int64_t hits = 0;
  for (const auto& ref : refs) {
    std::set<size_t> union_positions;
    for (const auto& can : cans)
      for (size_t i : lcs_indices(ref, can)) union_positions.insert(i);
    for (size_t i : union_positions) {
      const std::string& tok = ref[i];
      if (can_counts[tok] > 0 && ref_counts[tok] > 0) {
        ++hits;
        --can_counts[tok];
        --ref_counts[tok];
      }
    }
  }
  return make_score(double(hits), double(n), double(m));
}

RougeScores rouge_all(const std::string& target, const std::string& prediction, bool use_stemmer) {
  return {rouge_n(target, prediction, 1, use_stemmer), rouge_n(target, prediction, 2, use_stemmer),
          rouge_l(target, prediction, use_stemmer), rouge_lsum(target, prediction, use_stemmer)};
}

RougeScores rouge_corpus_mean(const std::vector<std::string>& targets, const std::vector<std::string>& predictions,
                              bool use_stemmer) {
  LD_CHECK(targets.size() == predictions.size(), "rouge: ", targets.size(), " targets but ", predictions.size(),
           " predictions");
  LD_CHECK(!targets.empty(), "rouge: no pairs to score");
  RougeScores mean;
  auto add = [](RougeScore& sum, const RougeScore& s) {
    sum.precision += s.precision;
    sum.recall += s.recall;
    sum.fmeasure += s.fmeasure;
  };
  for (size_t i = 0; i < targets.size(); ++i) {
    RougeScores s = rouge_all(targets[i], predictions[i], use_stemmer);
    add(mean.rouge1, s.rouge1);
    add(mean.rouge2, s.rouge2);
    add(mean.rougeL, s.rougeL);
    add(mean.rougeLsum, s.rougeLsum);
  }
  const double count = double(targets.size());
  for (RougeScore* s : {&mean.rouge1, &mean.rouge2, &mean.rougeL, &mean.rougeLsum}) {
    s->precision /= count;
    s->recall /= count;
    s->fmeasure /= count;
  }
  return mean;
}

}  // namespace ld::eval
