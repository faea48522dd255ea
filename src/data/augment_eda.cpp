#include "data/augment_eda.hpp"

#include <omp.h>

#include <algorithm>
#include <exception>

#include "core/error.hpp"

namespace ld::data {

namespace {

// eda.py's get_synonyms on top of a source: in the English setting each synonym is cleaned as
// eda.py does (lowercase, '_' and '-' to spaces, only a-z and space kept); the word itself and empty
// results are dropped.
std::vector<std::string> eda_synonyms(const std::string& word, const SynonymSource& source, bool english) {
  std::vector<std::string> raw = source.synonyms(word);
  if (!english) return raw;
  std::vector<std::string> out;
  for (std::string s : raw) {
    std::string clean;
    for (char c : s) {
      if (c == '_' || c == '-') c = ' ';
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if ((c >= 'a' && c <= 'z') || c == ' ') clean += c;
    }
    if (!clean.empty() && clean != word && std::find(out.begin(), out.end(), clean) == out.end())
      out.push_back(std::move(clean));
  }
  return out;
}

size_t changes(double alpha, size_t words) { return std::max<size_t>(1, static_cast<size_t>(alpha * double(words))); }

}  // namespace

const std::unordered_set<std::string>& eda_stop_words() {
  static const std::unordered_set<std::string> words = {
      "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself",
      "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself",
      "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that",
      "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had",
      "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as",
      "until", "while", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through",
      "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off",
      "over", "under", "again", "further", "then", "once", "here", "there", "when", "where", "why", "how",
      "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not",
      "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "should",
      "now", ""};
  return words;
}

std::string eda_clean(std::string_view text) {
  std::string out;
  bool space = true;  // drops leading spaces and runs of spaces
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.substr(i, 3) == "\xE2\x80\x99") {  // U+2019, dropped like "'"
      i += 2;
      continue;
    }
    char c = text[i];
    if (c == '\'') continue;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c < 'a' || c > 'z') c = ' ';
    if (c == ' ' && space) continue;
    space = c == ' ';
    out += c;
  }
  return out;  // like eda.py, a trailing space may remain; split_words ignores it
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    if (j > i) words.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

std::string join_words(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? " " : "") + words[i];
  return out;
}

std::vector<std::string> synonym_replacement(const std::vector<std::string>& words, size_t n,
                                             const SynonymSource& source, AugmentRandom& rng, bool english) {
  std::vector<std::string> candidates;
  for (const std::string& w : words)
    if (!eda_stop_words().count(w) && std::find(candidates.begin(), candidates.end(), w) == candidates.end())
      candidates.push_back(w);
  rng.shuffle(candidates);
  std::vector<std::string> out = words;
  size_t replaced = 0;
  for (const std::string& word : candidates) {
    if (replaced >= n) break;
    const std::vector<std::string> synonyms = eda_synonyms(word, source, english);
    if (synonyms.empty()) continue;
    const std::string& synonym = synonyms[rng.below(synonyms.size())];
    std::replace(out.begin(), out.end(), word, synonym);
    ++replaced;
  }
  return split_words(join_words(out));  // a multi-word synonym becomes several words
}

std::vector<std::string> random_insertion(const std::vector<std::string>& words, size_t n,
                                          const SynonymSource& source, AugmentRandom& rng, bool english) {
  std::vector<std::string> out = words;
  if (out.empty()) return out;
  for (size_t k = 0; k < n; ++k) {
    std::vector<std::string> synonyms;
    for (int tries = 0; tries < 10 && synonyms.empty(); ++tries)
      synonyms = eda_synonyms(out[rng.below(out.size())], source, english);
    if (synonyms.empty()) continue;
    const std::string synonym = synonyms[rng.below(synonyms.size())];
    // eda.py's randint(0, len - 1): never after the last word.
    out.insert(out.begin() + static_cast<long>(rng.below(out.size())), synonym);
  }
  return out;
}

std::vector<std::string> random_swap(const std::vector<std::string>& words, size_t n, AugmentRandom& rng) {
  std::vector<std::string> out = words;
  if (out.empty()) return out;
  for (size_t k = 0; k < n; ++k) {
    const size_t a = rng.below(out.size());
    size_t b = a;
    for (int tries = 0; b == a && tries < 4; ++tries) b = rng.below(out.size());  // eda.py gives up after 4
    std::swap(out[a], out[b]);
  }
  return out;
}

std::vector<std::string> random_deletion(const std::vector<std::string>& words, double p, AugmentRandom& rng) {
  if (words.size() <= 1) return words;
  std::vector<std::string> out;
  for (const std::string& w : words)
    if (rng.uniform() > p) out.push_back(w);
  if (out.empty()) return {words[rng.below(words.size())]};
  return out;
}

void validate(const EdaOptions& o) {
  auto share = [](double v, const char* name) {
    LD_CHECK(v >= 0.0 && v <= 1.0, "eda: ", name, " must be in [0, 1], got ", v);
  };
  share(o.alpha_sr, "alpha_sr");
  share(o.alpha_ri, "alpha_ri");
  share(o.alpha_rs, "alpha_rs");
  share(o.p_rd, "p_rd");
  LD_CHECK(o.n_aug >= 1, "eda: n_aug must be at least 1, got ", o.n_aug);
  LD_CHECK(o.alpha_sr > 0 || o.alpha_ri > 0 || o.alpha_rs > 0 || o.p_rd > 0,
           "eda: alpha_sr, alpha_ri, alpha_rs and p_rd are all 0: nothing to do");
}

std::vector<Augmented> eda_document(std::string_view text, size_t source_index, const SynonymSource& source,
                                    const EdaOptions& o, uint64_t seed) {
  const std::vector<std::string> words = split_words(o.english_cleanup ? eda_clean(text) : std::string(text));
  if (words.empty()) return {};
  AugmentRandom rng(seed, source_index);
  const size_t per_operation = static_cast<size_t>(o.n_aug / 4) + 1;
  std::vector<Augmented> out;
  auto emit = [&](const std::vector<std::string>& w, const char* method) {
    const std::string joined = join_words(w);
    out.push_back({o.english_cleanup ? join_words(split_words(eda_clean(joined))) : joined, source_index, method});
  };
  if (o.alpha_sr > 0)
    for (size_t i = 0; i < per_operation; ++i)
      emit(synonym_replacement(words, changes(o.alpha_sr, words.size()), source, rng, o.english_cleanup), "eda_sr");
  if (o.alpha_ri > 0)
    for (size_t i = 0; i < per_operation; ++i)
      emit(random_insertion(words, changes(o.alpha_ri, words.size()), source, rng, o.english_cleanup), "eda_ri");
  if (o.alpha_rs > 0)
    for (size_t i = 0; i < per_operation; ++i) emit(random_swap(words, changes(o.alpha_rs, words.size()), rng), "eda_rs");
  if (o.p_rd > 0)
    for (size_t i = 0; i < per_operation; ++i) emit(random_deletion(words, o.p_rd, rng), "eda_rd");
  rng.shuffle(out);
  if (out.size() > static_cast<size_t>(o.n_aug)) out.resize(static_cast<size_t>(o.n_aug));
  return out;
}

std::vector<Augmented> eda_augment(const std::vector<std::string>& documents, const SynonymSource& source,
                                   const EdaOptions& options, uint64_t seed, int threads,
                                   const std::function<void(size_t)>& on_progress) {
  validate(options);
  const int n_threads = threads > 0 ? threads : omp_get_max_threads();
  std::vector<std::vector<Augmented>> per_document(documents.size());
  constexpr size_t kChunk = 1024;  // progress is reported between chunks, from this thread
  for (size_t begin = 0; begin < documents.size(); begin += kChunk) {
    const long end = static_cast<long>(std::min(documents.size(), begin + kChunk));
    std::exception_ptr error;  // an exception must not leave an OpenMP region
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 16)
    for (long i = static_cast<long>(begin); i < end; ++i) {
      try {
        per_document[size_t(i)] = eda_document(documents[size_t(i)], size_t(i), source, options, seed);
      } catch (...) {
#pragma omp critical(ld_eda_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    if (on_progress) on_progress(size_t(end));
  }
  std::vector<Augmented> out;
  for (auto& d : per_document)
    for (auto& a : d) out.push_back(std::move(a));
  return out;
}

}  // namespace ld::data
