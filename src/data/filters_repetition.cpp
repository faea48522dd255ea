// Gopher's repetition rules (Rae et al. 2021, appendix A, table A1), measured as the reference
// implementations (DataTrove's GopherRepetitionFilter) do, with two deliberate differences: lengths are
// in code points (not bytes) and words come from split_words, so CJK text counts a character per word;
// and the "top n-gram" measure counts only an n-gram that occurs at least twice (a short document's
// only n-gram is no repetition).
#include <algorithm>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "data/filters.hpp"

namespace ld::data {

namespace {
constexpr int64_t kRepetitionMinWords = 50;
}  // namespace

namespace {

int64_t code_points(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\f\v");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\f\v") - b + 1);
}

// Non-blank lines (split on "\n") or paragraphs (split on blank lines), trimmed.
std::vector<std::string_view> pieces(std::string_view text, bool paragraphs) {
  std::vector<std::string_view> out;
  size_t start = 0, para_start = 0;
  bool in_para = false;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    if (!paragraphs) {
      if (!line.empty()) out.push_back(line);
    } else if (line.empty()) {
      if (in_para) out.push_back(trim(text.substr(para_start, start - para_start)));
      in_para = false;
    } else if (!in_para) {
      in_para = true;
      para_start = start;
    }
    start = end + 1;
  }
  if (paragraphs && in_para) out.push_back(trim(text.substr(para_start)));
  return out;
}

// Share of pieces that repeat an earlier one, and share of the text's characters in them.
std::pair<double, double> duplicate_fractions(const std::vector<std::string_view>& items, int64_t total_chars) {
  if (items.empty() || total_chars == 0) return {0.0, 0.0};
  std::unordered_set<std::string_view> seen;
  int64_t dup = 0, dup_chars = 0;
  for (std::string_view s : items)
    if (!seen.insert(s).second) {
      ++dup;
      dup_chars += code_points(s);
    }
  return {double(dup) / double(items.size()), double(dup_chars) / double(total_chars)};
}

uint64_t ngram_key(const std::vector<uint64_t>& word_hashes, size_t at, int n) {
  uint64_t h = uint64_t(n);
  for (int k = 0; k < n; ++k) h = mix64(h ^ word_hashes[at + size_t(k)]);
  return h;
}

int64_t ngram_chars(const std::vector<int64_t>& word_chars, size_t at, int n) {
  int64_t c = 0;
  for (int k = 0; k < n; ++k) c += word_chars[at + size_t(k)];
  return c;
}

}  // namespace

RepetitionStats repetition_stats(std::string_view text) {
  RepetitionStats s;
  const int64_t total = code_points(text);
  std::tie(s.dup_line_fraction, s.dup_line_char_fraction) = duplicate_fractions(pieces(text, false), total);
  std::tie(s.dup_para_fraction, s.dup_para_char_fraction) = duplicate_fractions(pieces(text, true), total);

  const std::vector<std::string_view> words = split_words(text);
  std::vector<uint64_t> hashes;
  std::vector<int64_t> chars;
  int64_t word_total = 0;
  for (std::string_view w : words) {
    hashes.push_back(hash64(w));
    chars.push_back(code_points(w));
    word_total += chars.back();
  }
  // Gopher applied these rules to documents of at least 50 words (its length rule); in a shorter one a
  // single long token seen twice (a path, a URL) already passes the thresholds.
  if (word_total == 0 || int64_t(words.size()) < kRepetitionMinWords) return s;
  // A CJK "word" here is one character, and a Chinese word is about two; so in a mostly-CJK document
  // an n-word rule looks at 2n characters, which keeps common two-character words from counting as
  // repeated phrases.
  size_t cjk = 0;
  for (std::string_view w : words) {
    if (w.size() > 4) continue;
    const auto c = utf8_chars(w);
    cjk += c.size() == 1 && is_cjk(c[0].cp);
  }
  const int scale = 2 * cjk > words.size() ? 2 : 1;
  for (int g = 2; g <= 4; ++g) {
    const int n = g * scale;  // the most frequent n-gram: its characters times its count
    std::unordered_map<uint64_t, std::pair<int64_t, int64_t>> counts;  // key -> (count, chars)
    for (size_t i = 0; i + size_t(n) <= words.size(); ++i) {
      auto& c = counts[ngram_key(hashes, i, n)];
      ++c.first;
      c.second = ngram_chars(chars, i, n);
    }
    int64_t best = 0;
    for (const auto& [key, c] : counts)
      if (c.first >= 2) best = std::max(best, c.first * c.second);
    s.top_ngram_char_fraction[size_t(g - 2)] = double(best) / double(word_total);
  }
  for (int g = 5; g <= 10; ++g) {
    const int n = g * scale;  // characters in n-grams seen before; a repeat skips its n words
    std::unordered_set<uint64_t> seen;
    int64_t repeated = 0;
    size_t i = 0;
    while (i + size_t(n) <= words.size()) {
      if (!seen.insert(ngram_key(hashes, i, n)).second) {
        repeated += ngram_chars(chars, i, n);
        i += size_t(n);
      } else {
        ++i;
      }
    }
    s.dup_ngram_char_fraction[size_t(g - 5)] = double(repeated) / double(word_total);
  }
  return s;
}

bool fails_repetition(std::string_view text, const FilterOptions& o) {
  const RepetitionStats s = repetition_stats(text);
  if (s.dup_line_fraction > o.max_dup_line_fraction || s.dup_line_char_fraction > o.max_dup_line_char_fraction)
    return true;
  if (s.dup_para_fraction > o.max_dup_para_fraction || s.dup_para_char_fraction > o.max_dup_para_char_fraction)
    return true;
  for (size_t i = 0; i < 3; ++i)
    if (s.top_ngram_char_fraction[i] > o.max_top_ngram_char_fraction[i]) return true;
  for (size_t i = 0; i < 6; ++i)
    if (s.dup_ngram_char_fraction[i] > o.max_dup_ngram_char_fraction[i]) return true;
  return false;
}

}  // namespace ld::data
