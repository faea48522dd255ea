#include "data/filters_unicode.hpp"

#include <utf8proc.h>

#include "core/error.hpp"
#include "tokenizer/pretokenize.hpp"

namespace ld::data {

std::vector<Utf8Char> utf8_chars(std::string_view text) {
  std::vector<Utf8Char> out;
  out.reserve(text.size());
  auto bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(bytes + pos, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
    if (len <= 0) {
      out.push_back({0xFFFD, text.substr(pos, 1)});
      ++pos;
      continue;
    }
    out.push_back({static_cast<char32_t>(cp), text.substr(pos, static_cast<size_t>(len))});
    pos += static_cast<size_t>(len);
  }
  return out;
}

Normalization parse_normalization(const std::string& name) {
  if (name == "none") return Normalization::none;
  if (name == "nfc") return Normalization::nfc;
  if (name == "nfkc") return Normalization::nfkc;
  LD_FAIL("--normalize: expected none, nfc or nfkc, got '", name, "'");
}


std::string normalize_unicode(std::string_view text, Normalization form) {
  if (form == Normalization::none) return std::string(text);
  return tok::unicode_normalize(text, /*compatibility=*/form == Normalization::nfkc);
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const Utf8Char& c : utf8_chars(text)) {
    if (c.cp < 0x80) {
      char b = c.bytes[0];
      out.push_back(b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
      continue;
    }
    if (c.cp == 0xFFFD && c.bytes.size() == 1) {  // an invalid byte
      out.append(c.bytes);
      continue;
    }
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_tolower(static_cast<utf8proc_int32_t>(c.cp)), buf);
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  }
  return out;
}

bool is_letter(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}

bool is_space(char32_t cp) {
  if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return true;
  if (cp < 0x80) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP || cp == 0x85;
}

bool is_cjk(char32_t cp) {
  return (cp >= 0x3000 && cp <= 0x30FF)      // CJK symbols and punctuation, hiragana, katakana
         || (cp >= 0x3400 && cp <= 0x4DBF)   // extension A
         || (cp >= 0x4E00 && cp <= 0x9FFF)   // unified ideographs
         || (cp >= 0xF900 && cp <= 0xFAFF)   // compatibility ideographs
         || (cp >= 0xFF00 && cp <= 0xFFEF)   // full-width forms (，！？ and full-width letters)
         || (cp >= 0x20000 && cp <= 0x3FFFF);  // extensions B and later
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t start = std::string_view::npos;
  const char* base = text.data();
  for (const Utf8Char& c : utf8_chars(text)) {
    const size_t at = static_cast<size_t>(c.bytes.data() - base);
    if (is_space(c.cp) || is_cjk(c.cp)) {
      if (start != std::string_view::npos) words.push_back(text.substr(start, at - start));
      start = std::string_view::npos;
      if (is_cjk(c.cp)) words.push_back(c.bytes);
    } else if (start == std::string_view::npos) {
      start = at;
    }
  }
  if (start != std::string_view::npos) words.push_back(text.substr(start));
  return words;
}

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash64(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xCBF29CE484222325ull ^ mix64(seed);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return mix64(h ^ bytes.size());
}

}  // namespace ld::data
