#include "eval/unicode_text.hpp"

#include <utf8proc.h>

namespace ld::eval {

namespace {

struct Decoded {
  char32_t cp;    // kInvalid for a byte that starts no valid UTF-8 sequence
  size_t length;  // bytes used, at least 1
};

constexpr char32_t kInvalid = 0x110000;

Decoded decode_at(std::string_view text, size_t pos) {
  auto bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos);
  utf8proc_int32_t cp = 0;
  utf8proc_ssize_t n = utf8proc_iterate(bytes, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
  if (n <= 0) return {kInvalid, 1};
  return {static_cast<char32_t>(cp), static_cast<size_t>(n)};
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buf[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

}  // namespace

bool is_python_whitespace(char32_t cp) {
  if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f)) return true;
  if (cp < 0x85) return false;
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

std::vector<std::string_view> utf8_characters(std::string_view text) {
  std::vector<std::string_view> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    Decoded d = decode_at(text, pos);
    chars.push_back(text.substr(pos, d.length));
    pos += d.length;
  }
  return chars;
}

std::vector<std::string> split_whitespace(std::string_view text) {
  std::vector<std::string> words;
  size_t start = std::string_view::npos;
  for (size_t pos = 0; pos < text.size();) {
    Decoded d = decode_at(text, pos);
    if (is_python_whitespace(d.cp)) {
      if (start != std::string_view::npos) words.emplace_back(text.substr(start, pos - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = pos;
    }
    pos += d.length;
  }
  if (start != std::string_view::npos) words.emplace_back(text.substr(start));
  return words;
}

std::string_view rstrip_whitespace(std::string_view text) {
  size_t end = 0;  // one past the last non-whitespace character
  for (size_t pos = 0; pos < text.size();) {
    Decoded d = decode_at(text, pos);
    pos += d.length;
    if (!is_python_whitespace(d.cp)) end = pos;
  }
  return text.substr(0, end);
}

std::string to_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    Decoded d = decode_at(text, pos);
    if (d.cp == kInvalid)
      out += text[pos];
    else
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(d.cp))));
    pos += d.length;
  }
  return out;
}

}  // namespace ld::eval
