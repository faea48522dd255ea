#pragma once
// The mixed corpus the tokenizer tests compare against reference implementations: English fortunes,
// Chinese poems and sayings from Debian's fortunes-zh, C++ source, emoji, runs of spaces and
// newlines, numbers and contractions. Each entry is one document, encoded on its own.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ld::test {

inline constexpr const char* kFortuneDir = "/usr/share/games/fortunes";

// The documents of one fortune file (separated by lines holding only "%"), at most max_docs of them.
// A missing file is a test failure that says which package to install.
inline std::vector<std::string> fortune_documents(const std::string& name, size_t max_docs) {
  std::filesystem::path path = std::filesystem::path(kFortuneDir) / name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << path << " is missing: install Debian's fortunes and fortunes-zh "
                  << "(apt-get install fortunes fortunes-zh)";
    return {};
  }
  std::vector<std::string> docs;
  std::string line, doc;
  while (docs.size() < max_docs && std::getline(in, line)) {
    if (line == "%") {
      if (!doc.empty()) docs.push_back(doc);
      doc.clear();
    } else {
      doc += line + "\n";
    }
  }
  if (!doc.empty() && docs.size() < max_docs) docs.push_back(doc);
  return docs;
}

inline const char* const kCodeSnippet = R"cpp(// Two kinds of checks: bad input throws, broken invariants assert.
#include <vector>
template <typename T>
T sum(const std::vector<T>& xs) {
    T total{};
    for (size_t i = 0; i < xs.size(); ++i) total += xs[i];  // i++ would do too
    return total;
}

int main(int argc, char** argv) {
	if (argc < 2) { std::fprintf(stderr, "usage: %s N\n", argv[0]); return 1; }
	auto n = std::stoll(argv[1]);
	std::vector<double> v(static_cast<size_t>(n), 3.14159);
	return sum(v) > 1e6 ? 0 : -1;
}
)cpp";

// Hand-made documents for the cases the regexes treat specially.
inline std::vector<std::string> synthetic_documents() {
  return {
      kCodeSnippet,
      "def f(x):\n    return {'a': [1, 2, 3], \"b\": x ** 2}\n\n\n\nclass A:\n\tpass\n",
      "Emoji: 😀😃🎉 👍🏽 👨‍👩‍👧‍👦 🇨🇳🇺🇸 ❤️ and text after emoji😀word",
      "Spaces:   three,      six,\n\n\nthree newlines,\r\n\r\nCRLF, tabs\t\t\there, trailing   ",
      "     leading spaces and\n    indented\n        code\n",
      "Numbers: 1234567, 3.14159, 1,000,000, 2024-06-01, 0x1F, 12345678901234567890, ٣٤٥ and ४२",
      "Contractions: they'll we've I'm you're she's it'd can't DON'T THEY'LL We'Re I'M o'clock rock'n'roll ''quoted''",
      "Mixed: 中文English混合text, 日本語のテキスト, 한국어 텍스트, русский текст, ελληνικά, עברית, العربية",
      "Accents: café naïve résumé Ångström façade coöperate",
      "Punctuation!!! ??? ... --- *** ((())) [[]] {{}} <<>> @@## $$%% ^^&& ~~``",
      "URL https://example.com/path?q=1&r=2#frag and email someone@example.org",
      "\n",
      " ",
      "a",
      "",
  };
}

// English from several fortune files, Chinese from fortunes-zh, plus the synthetic documents.
inline std::vector<std::string> mixed_corpus(size_t english_per_file = 60, size_t chinese_per_file = 60) {
  std::vector<std::string> docs;
  for (const char* name : {"fortunes", "computers", "literature", "science", "linux", "people", "wisdom"})
    for (auto& d : fortune_documents(name, english_per_file)) docs.push_back(std::move(d));
  for (const char* name : {"chinese", "tang300", "song100"})
    for (auto& d : fortune_documents(name, chinese_per_file)) docs.push_back(std::move(d));
  for (auto& d : synthetic_documents()) docs.push_back(std::move(d));
  return docs;
}

}  // namespace ld::test
