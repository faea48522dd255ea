#pragma once
// The Unicode pieces the cleaning filters and dedup share: code-point iteration that keeps invalid
// bytes (as U+FFFD-sized characters of their own), NFC/NFKC, lowercase, and character classes.
// CJK ideographs and kana are "word characters" of their own: rules written for space-separated
// languages count each one as a word, so Chinese and Japanese text is not mistaken for one long word.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ld::data {

// One character: its code point (0xFFFD for an invalid byte) and its bytes in the text.
struct Utf8Char {
  char32_t cp;
  std::string_view bytes;
};
std::vector<Utf8Char> utf8_chars(std::string_view text);

enum class Normalization { none, nfc, nfkc };
Normalization parse_normalization(const std::string& name);  // "none", "nfc", "nfkc"
std::string normalize_unicode(std::string_view text, Normalization form);  // invalid bytes kept

std::string lowercase(std::string_view text);  // utf8proc simple lowercase, per code point
bool is_letter(char32_t cp);                   // Unicode category L*
bool is_space(char32_t cp);                    // Zs/Zl/Zp and ASCII/C0 whitespace
bool is_cjk(char32_t cp);                      // Han ideographs, kana, CJK symbols: a word each

// Words: runs between whitespace; each CJK character is a word of its own.
std::vector<std::string_view> split_words(std::string_view text);

// 64-bit hash of bytes (FNV-1a then a splitmix finaliser): stable across builds and platforms.
uint64_t hash64(std::string_view bytes, uint64_t seed = 0);
uint64_t mix64(uint64_t x);

}  // namespace ld::data
