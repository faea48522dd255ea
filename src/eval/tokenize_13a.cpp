#include "eval/tokenize_13a.hpp"

#include <vector>

#include "eval/unicode_text.hpp"

namespace ld::eval {

namespace {

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    (out += std::string_view(text).substr(pos, hit - pos)) += to;
  out += std::string_view(text).substr(pos);
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The class [\{-\~\[-\` -\&\(-\+\:-\@\/] of tokenizer_re.py: { | } ~ [ \ ] ^ _ ` space ! " # $ % &
// ( ) * + : ; < = > ? @ /
bool is_13a_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') || (c >= '(' && c <= '+') ||
         (c >= ':' && c <= '@') || c == '/';
}

// Each rule below is one re.sub of tokenizer_re.py. re.sub scans left to right and never reuses a
// character a match consumed, which these loops reproduce (e.g. in "a.." only the first "." pairs
// with "a" in the second rule). Working on bytes gives the same result as on code points: the
// patterns are ASCII and a [^0-9] byte of a multi-byte character only ever gets a space beside it.
std::string pad_symbols(const std::string& s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) {
    if (is_13a_symbol(c))
      ((out += ' ') += c) += ' ';
    else
      out += c;
  }
  return out;
}

// ([^0-9])([\.,]) -> \1 \2 ;  ([\.,])([^0-9]) -> ' \1 \2' ;  ([0-9])(-) -> \1 \2 .
template <typename Matches, typename Emit>
std::string substitute_pairs(const std::string& s, Matches matches, Emit emit) {
  std::string out;
  out.reserve(s.size() * 2);
  size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && matches(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

bool is_period_or_comma(char c) { return c == '.' || c == ','; }

}  // namespace

std::string tokenize_13a(std::string_view input) {
  std::string line(input);
  line = replace_all(line, "<skipped>", "");
  line = replace_all(line, "-\n", "");
  line = replace_all(line, "\n", " ");
  line = replace_all(line, "&quot;", "\"");
  line = replace_all(line, "&amp;", "&");
  line = replace_all(line, "&lt;", "<");
  line = replace_all(line, "&gt;", ">");
  line = " " + line + " ";

  line = pad_symbols(line);
  line = substitute_pairs(
      line, [](char a, char b) { return !is_digit(a) && is_period_or_comma(b); },
      [](std::string& out, char a, char b) { (((out += a) += ' ') += b) += ' '; });
  line = substitute_pairs(
      line, [](char a, char b) { return is_period_or_comma(a) && !is_digit(b); },
      [](std::string& out, char a, char b) { (((out += ' ') += a) += ' ') += b; });
  line = substitute_pairs(
      line, [](char a, char b) { return is_digit(a) && b == '-'; },
      [](std::string& out, char a, char b) { (((out += a) += ' ') += b) += ' '; });

  std::string joined;
  for (const std::string& token : split_whitespace(line)) {
    if (!joined.empty()) joined += ' ';
    joined += token;
  }
  return joined;
}

}  // namespace ld::eval
