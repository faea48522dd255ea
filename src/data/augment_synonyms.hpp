#pragma once
// Where EDA finds synonyms: Princeton WordNet's database files, read directly (the files Debian's
// `wordnet-base` installs in /usr/share/wordnet; format in wndb(5)), or a user's tab-separated list
// for other languages ("word<TAB>syn1<TAB>syn2...", e.g. Chinese).
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ld::data {

class SynonymSource {
 public:
  virtual ~SynonymSource() = default;
  // Synonyms of `word`, in a fixed order, without repeats and without `word` itself; empty when none
  // is known. Safe to call from several threads at once.
  virtual std::vector<std::string> synonyms(std::string_view word) const = 0;
};

// WordNet 3.0: index.{noun,verb,adj,adv} (lemma -> synset byte offsets), data.* (synsets, read by
// offset) and *.exc (irregular forms). Lookup follows NLTK's wordnet.synsets(), which the EDA code
// calls: the word is lowercased (spaces become '_'), reduced to base forms per part of speech by
// morphy(7WN) -- the exception lists first ("mice" -> "mouse", "better" -> "good", "well"), else
// the detachment rules ("-ies" -> "-y", "-ing" -> "", ...) -- and the lemmas of every synset of every
// base form are collected, nouns then verbs, adjectives, adverbs, in file order.
class WordNet final : public SynonymSource {
 public:
  // Throws ld::Error when the folder or one of its 12 files is missing or a line is malformed
  // (naming file:line).
  explicit WordNet(const std::filesystem::path& dir);

  // pos: 'n', 'v', 'a' (adjectives and satellites), 'r'. The forms of `word` that are in the index.
  std::vector<std::string> base_forms(std::string_view word, char pos) const;
  // The lemma names of each synset of `word` (as written in data.*, '_' for spaces, adjective
  // markers like "(p)" removed).
  std::vector<std::vector<std::string>> synsets(std::string_view word) const;
  // The lemmas of synsets(word) with '_' as spaces, minus the word itself.
  std::vector<std::string> synonyms(std::string_view word) const override;

 private:
  struct PartOfSpeech {
    char tag = 'n';
    std::filesystem::path data_path;
    std::unordered_map<std::string, std::vector<uint64_t>> index;  // lemma -> synset offsets
    std::unordered_map<std::string, std::vector<std::string>> exceptions;
    std::string data;  // data.<pos>, whole
  };
  std::vector<std::string> synset_lemmas(const PartOfSpeech& pos, uint64_t offset) const;
  std::array<PartOfSpeech, 4> pos_;
};

// A user's list: each non-empty line "word<TAB>syn1[<TAB>syn2...]" (UTF-8; '\r' line ends are fine;
// lines starting with '#' are comments). Synonymy is as written, one way: list both directions to get
// both. A word on several lines gets the union, in order. Words are matched exactly (no
// lowercasing, no morphology).
class SynonymTable final : public SynonymSource {
 public:
  // Throws ld::Error naming file:line for a line with no tab or an empty field.
  static SynonymTable read_tsv(const std::filesystem::path& path);
  void add(const std::string& word, const std::string& synonym);
  std::vector<std::string> synonyms(std::string_view word) const override;
  size_t size() const { return table_.size(); }

 private:
  std::unordered_map<std::string, std::vector<std::string>> table_;
};

}  // namespace ld::data
