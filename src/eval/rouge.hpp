#pragma once
// ROUGE-N, ROUGE-L and ROUGE-Lsum as Google's rouge-score package computes them (rouge_scorer.py):
// its default tokenizer (lowercase, every character outside [a-z0-9] becomes a space, split; with the
// stemmer, NLTK's Porter stemmer on tokens longer than 3 characters), n-gram overlap for ROUGE-N,
// the longest common subsequence for ROUGE-L, and for ROUGE-Lsum the summary-level union LCS over
// sentences separated by newlines. Scores are 0-1.
#include <string>
#include <vector>

namespace ld::eval {

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

// rouge-score's tokenize.tokenize.
std::vector<std::string> rouge_tokens(const std::string& text, bool use_stemmer);

// ROUGE-n for n >= 1 (rouge1, rouge2, ...).
RougeScore rouge_n(const std::string& target, const std::string& prediction, int n, bool use_stemmer = false);
RougeScore rouge_l(const std::string& target, const std::string& prediction, bool use_stemmer = false);
// Sentences are the non-empty lines of each text.
RougeScore rouge_lsum(const std::string& target, const std::string& prediction, bool use_stemmer = false);

struct RougeScores {
  RougeScore rouge1, rouge2, rougeL, rougeLsum;
};

// All four for one pair.
RougeScores rouge_all(const std::string& target, const std::string& prediction, bool use_stemmer = false);

// Each precision, recall and F-measure averaged over the pairs (the mean of rouge-score's per-pair
// scores; rouge-score's BootstrapAggregator reports the same mean as its "mid" value up to resampling).
RougeScores rouge_corpus_mean(const std::vector<std::string>& targets, const std::vector<std::string>& predictions,
                              bool use_stemmer = false);

}  // namespace ld::eval
