// Line-level cleaning: boilerplate (ad and navigation) lines, e-mail and phone masking, code-like
// documents. Simple, documented heuristics (filters.hpp), not a classifier: each rule is one function.
#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <vector>

#include "data/filters.hpp"

namespace ld::data {

namespace {

// Phrases that mark a short line as an ad, a call to action or page furniture (matched lowercase).
constexpr std::array<const char*, 22> kBoilerplatePhrases = {
    "click here",       "subscribe",        "cookie policy",     "use cookies",      "uses cookies",
    "accept cookies",   "cookie settings",  "all rights reserved", "terms of use",   "terms of service",
    "terms and conditions", "privacy policy", "sign up",         "log in",           "read more",
    "share this",       "advertisement",    "sponsored",         "skip to content",  "back to top",
    "follow us",        "newsletter"};

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> split_on(std::string_view line, std::string_view sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t at; (at = line.find(sep, start)) != std::string_view::npos; start = at + sep.size())
    out.push_back(line.substr(start, at - start));
  out.push_back(line.substr(start));
  return out;
}

// "Home | About | Contact": >= 3 items, each of 1..3 words.
bool is_menu_line(std::string_view line) {
  for (std::string_view sep : {"|", "\xC2\xB7" /* · */, "\xC2\xBB" /* » */, " / "}) {
    auto items = split_on(line, sep);
    if (items.size() < 3) continue;
    bool menu = true;
    for (std::string_view item : items) {
      const size_t words = split_words(item).size();
      if (words == 0 || words > 3) menu = false;
    }
    if (menu) return true;
  }
  return false;
}

bool is_boilerplate_line(std::string_view line, int max_words) {
  if (is_menu_line(line)) return true;
  if (static_cast<int>(split_words(line).size()) > max_words) return false;
  const std::string lower = ascii_lower(line);
  for (const char* phrase : kBoilerplatePhrases)
    if (lower.find(phrase) != std::string::npos) return true;
  return false;
}

bool is_email_local(unsigned char c) { return std::isalnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'; }
bool is_domain_char(unsigned char c) { return std::isalnum(c) || c == '.' || c == '-'; }

// The end of a phone number starting at `i`, or i when there is none; digits counted in `digits`.
size_t phone_end(std::string_view t, size_t i, int& digits, int& groups) {
  digits = groups = 0;
  size_t j = i, last_digit = i;
  bool in_group = false;
  while (j < t.size()) {
    const unsigned char c = static_cast<unsigned char>(t[j]);
    if (std::isdigit(c)) {
      ++digits;
      if (!in_group) ++groups;
      in_group = true;
      last_digit = j + 1;
    } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || (c == '+' && j == i)) {
      in_group = false;
      if (c == ' ' && j + 1 < t.size() && t[j + 1] == ' ') break;  // two spaces: a column gap
    } else {
      break;
    }
    ++j;
  }
  return last_digit;
}

}  // namespace

std::string remove_boilerplate_lines(std::string_view text, int max_words, int64_t* removed) {
  std::string out;
  out.reserve(text.size());
  int64_t n = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (is_boilerplate_line(line, max_words)) {
      ++n;
      continue;
    }
    if (!out.empty()) out.push_back('\n');
    out.append(line);
  }
  if (removed) *removed = n;
  return n == 0 ? std::string(text) : out;
}

std::string mask_emails(std::string_view t, int64_t* masked) {
  std::string out;
  int64_t n = 0;
  size_t copied = 0;
  for (size_t at = t.find('@'); at != std::string_view::npos; at = t.find('@', at + 1)) {
    if (at < copied) continue;
    size_t b = at;
    while (b > copied && is_email_local(static_cast<unsigned char>(t[b - 1]))) --b;
    size_t e = at + 1;
    while (e < t.size() && is_domain_char(static_cast<unsigned char>(t[e]))) ++e;
    while (e > at + 1 && (t[e - 1] == '.' || t[e - 1] == '-')) --e;  // sentence punctuation
    std::string_view domain = t.substr(at + 1, e - at - 1);
    const size_t dot = domain.rfind('.');
    if (b == at || dot == std::string_view::npos || dot == 0 || domain.size() - dot - 1 < 2) continue;
    out.append(t.substr(copied, b - copied));
    out.append("<EMAIL>");
    copied = e;
    ++n;
  }
  if (masked) *masked = n;
  if (n == 0) return std::string(t);
  out.append(t.substr(copied));
  return out;
}

std::string mask_phones(std::string_view t, int64_t* masked) {
  std::string out;
  int64_t n = 0;
  size_t copied = 0, i = 0;
  while (i < t.size()) {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    const bool starts = std::isdigit(c) || c == '+' || c == '(';
    const bool boundary = i == 0 || !std::isalnum(static_cast<unsigned char>(t[i - 1]));
    if (!starts || !boundary) {
      ++i;
      continue;
    }
    int digits = 0, groups = 0;
    const size_t end = phone_end(t, i, digits, groups);
    const bool after_ok = end >= t.size() || !std::isalnum(static_cast<unsigned char>(t[end]));
    const bool marked = c == '+' || c == '(';
    if (after_ok && digits >= (marked ? 7 : 9) && digits <= 15 && (groups >= 3 || marked)) {
      out.append(t.substr(copied, i - copied));
      out.append("<PHONE>");
      copied = i = end;
      ++n;
      continue;
    }
    i = std::max(end, i + 1);
  }
  if (masked) *masked = n;
  if (n == 0) return std::string(t);
  out.append(t.substr(copied));
  return out;
}

bool looks_like_code(std::string_view text, double max_code_line_fraction) {
  static constexpr std::array<const char*, 14> kStarts = {"#include", "import ", "from ",   "def ",    "class ",
                                                          "function", "return",  "public ", "private ", "var ",
                                                          "const ",   "let ",    "if (",    "for ("};
  int64_t lines = 0, code = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    const size_t b = line.find_first_not_of(" \t");
    if (b == std::string_view::npos) continue;
    line = line.substr(b, line.find_last_not_of(" \t\r") - b + 1);
    ++lines;
    const char last = line.back();
    bool is_code = last == ';' || last == '{' || last == '}';
    for (const char* k : kStarts) is_code = is_code || line.starts_with(k);
    code += is_code;
  }
  return lines >= 3 && double(code) / double(lines) > max_code_line_fraction;
}

}  // namespace ld::data
