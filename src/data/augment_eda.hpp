#pragma once
// EDA: Easy Data Augmentation (Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques for Boosting
// Performance on Text Classification Tasks"), following the authors' eda.py operation by operation:
// synonym replacement (SR), random insertion (RI), random swap (RS), random deletion (RD).
//
// Differences from eda.py, all deliberate: draws come from a Philox stream per (seed, document)
// (augment_random.hpp) instead of Python's global `random`, so outputs are reproducible and do not
// depend on threads; where eda.py iterates a Python set (arbitrary order) we use first-occurrence
// order; random insertion picks a synonym at random where eda.py takes the set's first element.
//
// Words are the whitespace-separated tokens of a document. With `english_cleanup` (the WordNet
// setting) a document is first reduced as eda.py's get_only_chars does: "'" and U+2019 dropped,
// lowercase, anything else that is not a-z becomes a space (so "don't" -> "dont", "well-known" ->
// "well known", digits and non-ASCII letters vanish). Without it (other languages, e.g. a
// Chinese synonym TSV) documents must come already segmented into words by spaces; a document with no
// space is a single word. Outputs join words with one space.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "data/augment_random.hpp"
#include "data/augment_synonyms.hpp"

namespace ld::data {

struct EdaOptions {
  double alpha_sr = 0.1;  // share of words replaced by a synonym; 0 = no SR outputs
  double alpha_ri = 0.1;  // share of words inserted
  double alpha_rs = 0.1;  // share of words swapped
  double p_rd = 0.1;      // probability that each word is deleted
  int n_aug = 4;          // augmented documents per input document (>= 1)
  bool english_cleanup = true;
};

// eda.py's stop-word list (the words SR never replaces).
const std::unordered_set<std::string>& eda_stop_words();

// eda.py's get_only_chars.
std::string eda_clean(std::string_view text);
std::vector<std::string> split_words(std::string_view text);
std::string join_words(const std::vector<std::string>& words);

// The four operations on a word list. n is the number of changes, eda.py's
// max(1, int(alpha * number_of_words)).
// SR: up to n distinct non-stop words (those with synonyms, in random order) each replaced, at every
// occurrence, by one of their synonyms drawn at random; a multi-word synonym becomes several words.
// english_cleanup: synonyms are cleaned as eda.py's get_synonyms does (lowercase, '_' and '-' to
// spaces, only a-z and space kept).
std::vector<std::string> synonym_replacement(const std::vector<std::string>& words, size_t n,
                                             const SynonymSource& source, AugmentRandom& rng,
                                             bool english_cleanup = false);
// RI: n times, a synonym of a random word (up to 10 tries to find a word with synonyms, else that
// insertion is skipped) is inserted at a random position before the last word.
std::vector<std::string> random_insertion(const std::vector<std::string>& words, size_t n,
                                          const SynonymSource& source, AugmentRandom& rng,
                                          bool english_cleanup = false);
// RS: n times, two different random positions swap (a word list of one word is left as it is).
std::vector<std::string> random_swap(const std::vector<std::string>& words, size_t n, AugmentRandom& rng);
// RD: each word deleted with probability p; never returns an empty list (one random word is kept).
std::vector<std::string> random_deletion(const std::vector<std::string>& words, double p, AugmentRandom& rng);

struct Augmented {
  std::string text;
  size_t source_index = 0;
  std::string method;  // "eda_sr", "eda_ri", "eda_rs", "eda_rd", "backtranslate"
};

// eda.py's eda(): int(n_aug / 4) + 1 documents from each operation whose parameter is > 0, shuffled,
// the first n_aug kept (the original is not included). A document with no words gives none.
std::vector<Augmented> eda_document(std::string_view text, size_t source_index, const SynonymSource& source,
                                    const EdaOptions& options, uint64_t seed);

// All documents, in input order, threads 0 = all (OpenMP). The result depends on the seed only.
// on_progress(documents done) is called from the calling thread now and then.
std::vector<Augmented> eda_augment(const std::vector<std::string>& documents, const SynonymSource& source,
                                   const EdaOptions& options, uint64_t seed, int threads = 0,
                                   const std::function<void(size_t)>& on_progress = {});

void validate(const EdaOptions& options);

}  // namespace ld::data
