#pragma once
// N-gram counting shared by BLEU, chrF and ROUGE. An n-gram is keyed by its pieces joined with a
// space: word tokens never contain whitespace, and character n-grams are keyed by their bytes.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ld::eval {

using NgramCounts = std::unordered_map<std::string, int64_t>;

// Counts of the n-grams of `tokens` (empty when there are fewer than n tokens).
NgramCounts word_ngrams(const std::vector<std::string>& tokens, int n);

// Counts of the n-grams of characters (each view one character, see utf8_characters).
NgramCounts char_ngrams(const std::vector<std::string_view>& chars, int n);

int64_t total_count(const NgramCounts& counts);

// Sum over the n-grams of hyp of min(count in hyp, count in ref): the clipped matches.
int64_t clipped_matches(const NgramCounts& hyp, const NgramCounts& ref);

}  // namespace ld::eval
