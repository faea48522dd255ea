#include "tune/jinja_lexer.hpp"

#include <algorithm>
#include <cctype>

#include "core/error.hpp"
#include "tune/jinja_value.hpp"

namespace ld::tune::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Jinja joins the lines with '\n' (so "\r\n" and "\r" become "\n") and drops one trailing newline.
std::string normalize_newlines(const std::string& source) {
  std::string out;
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string rstrip_space(const std::string& s) {
  size_t end = s.size();
  while (end > 0 && is_space(s[end - 1])) --end;
  return s.substr(0, end);
}

class Lexer {
 public:
  Lexer(std::string source, const std::string& origin) : src_(std::move(source)), origin_(origin) {
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') newlines_.push_back(i);
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t start = next_tag_start();
      if (start == std::string::npos) {
        emit_text(src_.substr(pos_), line_at(pos_));
        break;
      }
      lex_tag(start);
    }
    tokens_.push_back({TokenType::eof, "", line_at(src_.size())});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(size_t pos, const std::string& problem) const {
    LD_FAIL(origin_, ":", line_at(pos), ": template syntax error: ", problem);
  }

  // 1 + the number of newlines before `pos`.
  int line_at(size_t pos) const {
    return 1 + static_cast<int>(std::lower_bound(newlines_.begin(), newlines_.end(), pos) - newlines_.begin());
  }

  size_t next_tag_start() const {
    size_t p = pos_;
    while ((p = src_.find('{', p)) != std::string::npos) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
      ++p;
    }
    return std::string::npos;
  }

  void emit_text(std::string text, int line) {
    if (!text.empty()) tokens_.push_back({TokenType::text, std::move(text), line});
  }

  // The text before a tag, with '-' stripping or lstrip_blocks applied as Jinja's lexer does.
  std::string text_before(size_t start, char kind, char sign) const {
    std::string text = src_.substr(pos_, start - pos_);
    if (sign == '-') return rstrip_space(text);
    if (sign == '+' || kind == '{') return text;
    const size_t line_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (line_pos > 0 || line_starting_) {
      const bool only_space = line_pos < text.size() &&
                              std::all_of(text.begin() + static_cast<long>(line_pos), text.end(), is_space);
      if (only_space) text.resize(line_pos);
    }
    return text;
  }

  void lex_tag(size_t start) {
    const char kind = src_[start + 1];
    const char sign = start + 2 < src_.size() && (src_[start + 2] == '-' || src_[start + 2] == '+') ? src_[start + 2] : 0;
    emit_text(text_before(start, kind, sign), line_at(pos_));
    pos_ = start + 2 + (sign ? 1 : 0);
    if (kind == '#') {
      lex_comment(start);
    } else {
      const bool block = kind == '%';
      tokens_.push_back({block ? TokenType::block_begin : TokenType::variable_begin, "", line_at(start)});
      lex_inside(start, block);
    }
  }

  void lex_comment(size_t start) {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) fail(start, "missing end of comment tag '#}'");
    const bool strip = end > pos_ && src_[end - 1] == '-';
    pos_ = end + 2;
    after_tag_end(strip, true);
  }

  // Skips what follows a tag end: all whitespace after '-', else one newline (trim_blocks).
  void after_tag_end(bool strip, bool trim) {
    if (strip) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (trim && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  bool at(const char* s) const { return src_.compare(pos_, std::char_traits<char>::length(s), s) == 0; }

  // Recognises the end delimiter of the tag (only outside brackets, as Jinja's balancing does).
  bool try_tag_end(bool block) {
    if (depth_ > 0) return false;
    const std::string close = block ? "%}" : "}}";
    for (const char* sign : {"-", "+", ""}) {
      if (!block && *sign == '+') continue;
      if (src_.compare(pos_, 1 + close.size() - (*sign ? 0 : 1), std::string(sign) + close) != 0) continue;
      const int line = line_at(pos_);
      pos_ += close.size() + (*sign ? 1 : 0);
      tokens_.push_back({block ? TokenType::block_end : TokenType::variable_end, "", line});
      after_tag_end(*sign == '-', block && *sign != '+');
      return true;
    }
    return false;
  }

  void lex_inside(size_t start, bool block) {
    depth_ = 0;
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) fail(start, std::string("missing end of tag '") + (block ? "%}" : "}}") + "'");
      if (try_tag_end(block)) return;
      lex_token();
    }
  }

  void lex_token() {
    const char c = src_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') return lex_name();
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number();
    if (c == '\'' || c == '"') return lex_string();
    lex_operator();
  }

  void lex_name() {
    const size_t begin = pos_;
    while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    tokens_.push_back({TokenType::name, src_.substr(begin, pos_ - begin), line_at(begin)});
  }

  std::string digits() {
    std::string out;
    while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
      if (src_[pos_++] != '_') out += src_[pos_ - 1];
    return out;
  }

  void lex_number() {
    const int line = line_at(pos_);
    std::string number = digits();
    bool is_real = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      ++pos_;
      number += "." + digits();
      is_real = true;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        number += "e" + src_.substr(pos_ + 1, p - pos_ - 1);
        pos_ = p;
        number += digits();
        is_real = true;
      }
    }
    tokens_.push_back({is_real ? TokenType::real : TokenType::integer, number, line});
  }

  void lex_string() {
    const size_t begin = pos_;
    const char quote = src_[pos_++];
    std::string raw;
    while (pos_ < src_.size() && src_[pos_] != quote) {
      if (src_[pos_] == '\\' && pos_ + 1 < src_.size()) raw += src_[pos_++];
      raw += src_[pos_++];
    }
    if (pos_ >= src_.size()) fail(begin, "unterminated string");
    ++pos_;
    tokens_.push_back({TokenType::string, decode_escapes(raw, begin), line_at(begin)});
  }

  // Python's "unicode-escape" decoding, which Jinja applies to string literals.
  std::string decode_escapes(const std::string& raw, size_t begin) const {
    std::u32string out;
    const std::u32string in = to_code_points(raw);
    for (size_t i = 0; i < in.size(); ++i) {
      if (in[i] != U'\\' || i + 1 == in.size()) {
        out += in[i];
        continue;
      }
      const char32_t e = in[++i];
      const std::u32string simple_from = U"nrtabfv\\'\"\n";
      const std::u32string simple_to = U"\n\r\t\a\b\f\v\\'\"";
      if (const size_t k = simple_from.find(e); k != std::u32string::npos) {
        if (e != U'\n') out += simple_to[k];  // backslash-newline is a line continuation
      } else if (e == U'x' || e == U'u' || e == U'U') {
        const size_t n = e == U'x' ? 2 : (e == U'u' ? 4 : 8);
        out += hex_code_point(in, i + 1, n, begin);
        i += n;
      } else if (e >= U'0' && e <= U'7') {
        char32_t v = 0;
        size_t n = 0;
        for (; n < 3 && i + n < in.size() && in[i + n] >= U'0' && in[i + n] <= U'7'; ++n) v = v * 8 + (in[i + n] - U'0');
        out += v;
        i += n - 1;
      } else {
        out += U'\\';
        out += e;
      }
    }
    return from_code_points(out);
  }

  char32_t hex_code_point(const std::u32string& in, size_t at, size_t n, size_t begin) const {
    char32_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char32_t c = at + k < in.size() ? in[at + k] : U'?';
      if (!std::isxdigit(static_cast<int>(c < 128 ? c : '?'))) fail(begin, "truncated \\x/\\u escape in a string");
      v = v * 16 + static_cast<char32_t>(std::stoi(std::string(1, static_cast<char>(c)), nullptr, 16));
    }
    return v;
  }

  void lex_operator() {
    static const char* const kOperators[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                             ">",  "=",  "(",  ")",  "[",  "]",  "{", "}", ",", ".", ":", "|", ";"};
    for (const char* op : kOperators) {
      if (!at(op)) continue;
      const std::string value(op);
      if (value == "(" || value == "[" || value == "{") ++depth_;
      if ((value == ")" || value == "]" || value == "}") && depth_ > 0) --depth_;
      tokens_.push_back({TokenType::op, value, line_at(pos_)});
      pos_ += value.size();
      return;
    }
    fail(pos_, std::string("unexpected character '") + src_[pos_] + "'");
  }

  std::string src_;
  std::vector<size_t> newlines_;  // positions of '\n' in src_, for line numbers
  const std::string& origin_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const std::string& origin) {
  return Lexer(normalize_newlines(source), origin).run();
}

}  // namespace ld::tune::jinja
