#include "data/augment_synonyms.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "core/error.hpp"

namespace ld::data {

namespace {

namespace fs = std::filesystem;

std::string read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in, path.string(), ": cannot open (WordNet needs index.*, data.* and *.exc of noun, verb, adj, adv;"
                              " on Debian: apt-get install wordnet-base)");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

uint64_t parse_number(std::string_view s, int base, const fs::path& file, size_t line_no) {
  try {
    size_t used = 0;
    const unsigned long long v = std::stoull(std::string(s), &used, base);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  LD_FAIL(file.string(), ":", line_no, ": expected a number, got '", s, "'");
}

// Calls f(line, line_no) for each line; lines starting with a space are the license header.
template <typename F>
void for_each_line(const std::string& text, F f) {
  size_t start = 0, line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && line[0] != ' ') f(line, line_no);
    start = end + 1;
  }
}

// index.<pos>: lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
void read_index(const fs::path& path, std::unordered_map<std::string, std::vector<uint64_t>>& index) {
  for_each_line(read_whole(path), [&](std::string_view line, size_t no) {
    const auto f = split_spaces(line);
    LD_CHECK(f.size() >= 4, path.string(), ":", no, ": expected 'lemma pos synset_cnt p_cnt ...', got '", line, "'");
    const uint64_t synsets = parse_number(f[2], 10, path, no);
    const uint64_t pointers = parse_number(f[3], 10, path, no);
    const size_t first = 4 + pointers + 2;
    LD_CHECK(f.size() == first + synsets, path.string(), ":", no, ": expected ", synsets, " synset offsets, got '",
             line, "'");
    auto& offsets = index[std::string(f[0])];
    for (size_t i = first; i < f.size(); ++i) offsets.push_back(parse_number(f[i], 10, path, no));
  });
}

// <pos>.exc: inflected_form base_form [base_form...]
void read_exceptions(const fs::path& path, std::unordered_map<std::string, std::vector<std::string>>& exceptions) {
  for_each_line(read_whole(path), [&](std::string_view line, size_t no) {
    const auto f = split_spaces(line);
    LD_CHECK(f.size() >= 2, path.string(), ":", no, ": expected 'inflected_form base_form...', got '", line, "'");
    auto& bases = exceptions[std::string(f[0])];
    for (size_t i = 1; i < f.size(); ++i) bases.emplace_back(f[i]);
  });
}

// morphy(7WN)'s rules of detachment, in NLTK's order.
const std::vector<std::pair<std::string, std::string>>& detachment_rules(char pos) {
  static const std::vector<std::pair<std::string, std::string>> noun = {
      {"s", ""}, {"ses", "s"}, {"ves", "f"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
      {"men", "man"}, {"ies", "y"}};
  static const std::vector<std::pair<std::string, std::string>> verb = {
      {"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}};
  static const std::vector<std::pair<std::string, std::string>> adj = {
      {"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}};
  static const std::vector<std::pair<std::string, std::string>> none;
  switch (pos) {
    case 'n': return noun;
    case 'v': return verb;
    case 'a': return adj;
    default: return none;
  }
}

std::string lookup_key(std::string_view word) {
  std::string key(word);
  for (char& c : key) {
    if (c == ' ') c = '_';
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return key;
}

}  // namespace

WordNet::WordNet(const fs::path& dir) {
  LD_CHECK(fs::is_directory(dir), "WordNet folder ", dir.string(),
           ": not found (install Debian's wordnet-base, which puts it in /usr/share/wordnet, or give --wordnet DIR)");
  const std::array<std::pair<char, const char*>, 4> names = {{{'n', "noun"}, {'v', "verb"}, {'a', "adj"}, {'r', "adv"}}};
  for (size_t i = 0; i < names.size(); ++i) {
    PartOfSpeech& p = pos_[i];
    p.tag = names[i].first;
    const std::string name = names[i].second;
    read_index(dir / ("index." + name), p.index);
    read_exceptions(dir / (name + ".exc"), p.exceptions);
    p.data_path = dir / ("data." + name);
    p.data = read_whole(p.data_path);
  }
}

std::vector<std::string> WordNet::base_forms(std::string_view word, char pos) const {
  auto it = std::find_if(pos_.begin(), pos_.end(), [&](const PartOfSpeech& p) { return p.tag == pos; });
  LD_CHECK(it != pos_.end(), "WordNet: part of speech '", pos, "' is not one of n, v, a, r");
  const std::string form = lookup_key(word);
  std::vector<std::string> candidates = {form};
  if (auto exc = it->exceptions.find(form); exc != it->exceptions.end()) {
    candidates.insert(candidates.end(), exc->second.begin(), exc->second.end());
  } else {
    for (const auto& [old_end, new_end] : detachment_rules(pos))
      if (form.size() > old_end.size() && form.ends_with(old_end))
        candidates.push_back(form.substr(0, form.size() - old_end.size()) + new_end);
  }
  std::vector<std::string> found;
  for (const std::string& c : candidates)
    if (it->index.count(c) && std::find(found.begin(), found.end(), c) == found.end()) found.push_back(c);
  return found;
}

// data.<pos> line at byte `offset`: offset lex_filenum ss_type w_cnt(hex) [word lex_id(hex)]... p_cnt ...
std::vector<std::string> WordNet::synset_lemmas(const PartOfSpeech& pos, uint64_t offset) const {
  LD_CHECK(offset < pos.data.size(), pos.data_path.string(), ": synset offset ", offset, " is past the end of the file");
  const size_t end = pos.data.find('\n', offset);
  const std::string_view line(pos.data.data() + offset, (end == std::string::npos ? pos.data.size() : end) - offset);
  const auto f = split_spaces(line);
  LD_CHECK(f.size() >= 4 && parse_number(f[0], 10, pos.data_path, 0) == offset, pos.data_path.string(),
           ": no synset at byte offset ", offset, " (index and data files do not match)");
  const uint64_t words = parse_number(f[3], 16, pos.data_path, 0);
  LD_CHECK(f.size() >= 4 + 2 * words, pos.data_path.string(), ": synset at byte offset ", offset, " is cut short");
  std::vector<std::string> lemmas;
  for (uint64_t w = 0; w < words; ++w) {
    std::string lemma(f[4 + 2 * w]);
    // Adjectives may carry a syntactic marker: "galore(ip)", "elect(p)", "beaten(a)".
    if (lemma.ends_with(")")) lemma.erase(lemma.rfind('('));
    lemmas.push_back(std::move(lemma));
  }
  return lemmas;
}

std::vector<std::vector<std::string>> WordNet::synsets(std::string_view word) const {
  std::vector<std::vector<std::string>> out;
  for (const PartOfSpeech& p : pos_)
    for (const std::string& form : base_forms(word, p.tag))
      for (uint64_t offset : p.index.at(form)) out.push_back(synset_lemmas(p, offset));
  return out;
}

std::vector<std::string> WordNet::synonyms(std::string_view word) const {
  const std::string self = lookup_key(word);
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const auto& synset : synsets(word)) {
    for (const std::string& lemma : synset) {
      if (lookup_key(lemma) == self) continue;
      std::string name = lemma;
      std::replace(name.begin(), name.end(), '_', ' ');
      if (seen.insert(name).second) out.push_back(std::move(name));
    }
  }
  return out;
}

SynonymTable SynonymTable::read_tsv(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in, path.string(), ": cannot open the synonym file");
  SynonymTable table;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    size_t start = 0;
    while (true) {
      const size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    const bool empty_field = std::any_of(fields.begin(), fields.end(), [](const std::string& s) { return s.empty(); });
    LD_CHECK(fields.size() >= 2 && !empty_field, path.string(), ":", line_no,
             ": expected word<TAB>synonym[<TAB>synonym...] with no empty field, got '", line, "'");
    for (size_t i = 1; i < fields.size(); ++i) table.add(fields[0], fields[i]);
  }
  return table;
}

void SynonymTable::add(const std::string& word, const std::string& synonym) {
  if (word == synonym) return;
  auto& list = table_[word];
  if (std::find(list.begin(), list.end(), synonym) == list.end()) list.push_back(synonym);
}

std::vector<std::string> SynonymTable::synonyms(std::string_view word) const {
  auto it = table_.find(std::string(word));
  return it == table_.end() ? std::vector<std::string>{} : it->second;
}

}  // namespace ld::data
