#include "eval/ngrams.hpp"

#include <algorithm>

namespace ld::eval {

NgramCounts word_ngrams(const std::vector<std::string>& tokens, int n) {
  NgramCounts counts;
  const size_t order = static_cast<size_t>(n);
  for (size_t i = 0; i + order <= tokens.size(); ++i) {
    std::string key = tokens[i];
    for (size_t j = 1; j < order; ++j) (key += ' ') += tokens[i + j];
    ++counts[key];
  }
  return counts;
}

NgramCounts char_ngrams(const std::vector<std::string_view>& chars, int n) {
  NgramCounts counts;
  const size_t order = static_cast<size_t>(n);
  for (size_t i = 0; i + order <= chars.size(); ++i) {
    // The characters are consecutive views into one string, so the n-gram is one contiguous range.
    const char* begin = chars[i].data();
    const char* end = chars[i + order - 1].data() + chars[i + order - 1].size();
    ++counts[std::string(begin, end)];
  }
  return counts;
}

int64_t total_count(const NgramCounts& counts) {
  int64_t total = 0;
  for (const auto& [ngram, count] : counts) total += count;
  return total;
}

int64_t clipped_matches(const NgramCounts& hyp, const NgramCounts& ref) {
  int64_t matches = 0;
  for (const auto& [ngram, count] : hyp) {
    auto it = ref.find(ngram);
    if (it != ref.end()) matches += std::min(count, it->second);
  }
  return matches;
}

}  // namespace ld::eval
