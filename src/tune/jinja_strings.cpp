#include "tune/jinja_strings.hpp"


#include "core/error.hpp"
#include "tune/jinja_value.hpp"

namespace ld::tune::jinja {

namespace {

// Python's str.isspace() for the code points chat text uses (ASCII, NBSP and the Unicode spaces).
bool is_py_space(char32_t c) {
  return c == U' ' || (c >= U'\t' && c <= U'\r') || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
         c == 0x3000;
}

// Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic, the scripts with
// case that chat text mostly uses (other code points are left as they are).
char32_t lower_cp(char32_t c) {
  if ((c >= U'A' && c <= U'Z') || (c >= 0xc0 && c <= 0xde && c != 0xd7) || (c >= 0x391 && c <= 0x3ab && c != 0x3a2) ||
      (c >= 0x410 && c <= 0x42f))
    return c + 0x20;
  if (c >= 0x400 && c <= 0x40f) return c + 0x50;
  if (c == 0x386) return 0x3ac;  // Greek capitals with tonos
  if (c >= 0x388 && c <= 0x38a) return c + 0x25;
  if (c == 0x38c) return 0x3cc;
  if (c == 0x38e || c == 0x38f) return c + 0x3f;
  if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x138 && c != 0x149 && c != 0x178 && c != 0x17f)
    return (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e) ? (c % 2 == 1 ? c + 1 : c) : (c % 2 == 0 ? c + 1 : c);
  if (c == 0x178) return 0xff;
  return c;
}

char32_t upper_cp(char32_t c) {
  if ((c >= U'a' && c <= U'z') || (c >= 0xe0 && c <= 0xfe && c != 0xf7) || (c >= 0x3b1 && c <= 0x3cb && c != 0x3c2) ||
      (c >= 0x430 && c <= 0x44f))
    return c - 0x20;
  if (c >= 0x450 && c <= 0x45f) return c - 0x50;
  if (c == 0x3ac) return 0x386;
  if (c >= 0x3ad && c <= 0x3af) return c - 0x25;
  if (c == 0x3cc) return 0x38c;
  if (c == 0x3cd || c == 0x3ce) return c - 0x3f;
  if (c == 0x3c2) return 0x3a3;  // final sigma
  if (c == 0xff) return 0x178;
  if (c == 0xb5) return 0x39c;  // micro sign
  if (c >= 0x100 && c <= 0x17f && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17f)
    return (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e) ? (c % 2 == 0 ? c - 1 : c) : (c % 2 == 1 ? c - 1 : c);
  return c;
}

bool is_cased(char32_t c) { return lower_cp(c) != c || upper_cp(c) != c || c == 0xdf; }

std::u32string upper_string(const std::u32string& s) {
  std::u32string out;
  for (char32_t c : s) {
    if (c == 0xdf) {
      out += U"SS";  // Python: 'ß'.upper() == 'SS'
    } else {
      out += upper_cp(c);
    }
  }
  return out;
}

}  // namespace

std::string strip_chars(const std::string& s, const std::string& chars, bool use_chars, bool left, bool right) {
  const std::u32string cps = to_code_points(s);
  const std::u32string set = to_code_points(chars);
  auto strip = [&](char32_t c) { return use_chars ? set.find(c) != std::u32string::npos : is_py_space(c); };
  size_t begin = 0, end = cps.size();
  while (left && begin < end && strip(cps[begin])) ++begin;
  while (right && end > begin && strip(cps[end - 1])) --end;
  return from_code_points(cps.substr(begin, end - begin));
}

std::vector<std::string> split_string(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> parts;
  if (sep) {
    LD_CHECK(!sep->empty(), "split(): empty separator");
    size_t start = 0;
    for (size_t at; (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) &&
                    (at = s.find(*sep, start)) != std::string::npos;
         start = at + sep->size())
      parts.push_back(s.substr(start, at - start));
    parts.push_back(s.substr(start));
    return parts;
  }
  const std::u32string cps = to_code_points(s);
  size_t i = 0;
  while (true) {
    while (i < cps.size() && is_py_space(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      parts.push_back(from_code_points(cps.substr(i)));  // the rest, trailing whitespace kept
      break;
    }
    const size_t begin = i;
    while (i < cps.size() && !is_py_space(cps[i])) ++i;
    parts.push_back(from_code_points(cps.substr(begin, i - begin)));
  }
  return parts;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::string current;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' || s[i] == '\r') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      lines.push_back(current);
      current.clear();
    } else {
      current += s[i];
    }
  }
  if (!current.empty()) lines.push_back(current);
  return lines;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  LD_CHECK(!from.empty(), "replace(): replacing the empty string is not supported");
  std::string out;
  size_t start = 0;
  for (size_t at; count != 0 && (at = s.find(from, start)) != std::string::npos; start = at + from.size(), --count)
    out += s.substr(start, at - start) + to;
  return out + s.substr(start);
}

std::string to_upper(const std::string& s) { return from_code_points(upper_string(to_code_points(s))); }

std::string to_lower(const std::string& s) {
  std::u32string cps = to_code_points(s);
  for (char32_t& c : cps) c = lower_cp(c);
  return from_code_points(cps);
}

// Python's str.title(): a cased letter after an uncased character starts a word.
std::string to_title(const std::string& s) {
  std::u32string out;
  bool previous_cased = false;
  for (char32_t c : to_code_points(s)) {
    const bool cased = is_cased(c);
    if (!cased) {
      out += c;
    } else if (previous_cased) {
      out += lower_cp(c);
    } else {
      out += c == 0xdf ? U"Ss" : std::u32string(1, upper_cp(c));
    }
    previous_cased = cased;
  }
  return from_code_points(out);
}

std::string capitalize(const std::string& s) {
  std::u32string cps = to_code_points(s);
  std::u32string out;
  for (size_t i = 0; i < cps.size(); ++i)
    out += i == 0 ? upper_string(std::u32string(1, cps[0])) : std::u32string(1, lower_cp(cps[i]));
  return from_code_points(out);
}

}  // namespace ld::tune::jinja
