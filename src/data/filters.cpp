#include "data/filters.hpp"

#include <cctype>

namespace ld::data {

const char* drop_reason_name(DropReason r) {
  switch (r) {
    case DropReason::kept: return "kept";
    case DropReason::empty: return "empty";
    case DropReason::too_short: return "too_short";
    case DropReason::too_long: return "too_long";
    case DropReason::non_letter: return "non_letter";
    case DropReason::repetition: return "repetition";
    case DropReason::code: return "code";
  }
  return "?";
}

void FilterCounts::add(const FilterOutcome& o, bool normalized) {
  ++dropped[static_cast<size_t>(o.reason)];
  docs_normalized += normalized;
  docs_control_stripped += o.control_chars_removed > 0;
  control_chars_removed += o.control_chars_removed;
  docs_boilerplate += o.boilerplate_lines_removed > 0;
  boilerplate_lines_removed += o.boilerplate_lines_removed;
  docs_masked += (o.emails_masked + o.phones_masked) > 0;
  emails_masked += o.emails_masked;
  phones_masked += o.phones_masked;
}

std::string strip_control_chars(std::string_view t, int64_t* removed) {
  std::string out;
  out.reserve(t.size());
  int64_t n = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    if (c == 0x1B) {  // ESC: drop a whole ANSI sequence ("ESC [ params letter") or the lone ESC
      size_t j = i + 1;
      if (j < t.size() && t[j] == '[') {
        ++j;
        while (j < t.size() && ((t[j] >= '0' && t[j] <= '9') || t[j] == ';' || t[j] == '?')) ++j;
        if (j < t.size() && std::isalpha(static_cast<unsigned char>(t[j]))) i = j;
      }
      ++n;
      continue;
    }
    if (c == '\r') {
      if (i + 1 < t.size() && t[i + 1] == '\n') continue;  // CRLF -> LF
      out.push_back('\n');
      continue;
    }
    const bool c0 = c < 0x20 && c != '\t' && c != '\n';
    const bool c1 = c == 0xC2 && i + 1 < t.size() && static_cast<unsigned char>(t[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(t[i + 1]) <= 0x9F;  // U+0080..U+009F in UTF-8
    if (c0 || c == 0x7F) {
      ++n;
      continue;
    }
    if (c1) {
      ++n;
      ++i;
      continue;
    }
    out.push_back(t[i]);
  }
  if (removed) *removed = n;
  return out;
}

double non_letter_fraction(std::string_view text) {
  int64_t counted = 0, non_letters = 0;
  for (const Utf8Char& c : utf8_chars(text)) {
    if (is_space(c.cp)) continue;
    ++counted;
    non_letters += !is_letter(c.cp);
  }
  return counted == 0 ? 0.0 : double(non_letters) / double(counted);
}

namespace {
int64_t count_code_points(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}
bool is_blank(std::string_view s) { return s.find_first_not_of(" \t\n\r\f\v") == std::string_view::npos; }
}  // namespace

FilterOutcome clean_document(std::string& text, const FilterOptions& o, bool* normalized) {
  FilterOutcome out;
  if (o.normalization != Normalization::none) {
    std::string n = normalize_unicode(text, o.normalization);
    if (normalized) *normalized = n != text;
    text = std::move(n);
  } else if (normalized) {
    *normalized = false;
  }
  if (o.strip_control) text = strip_control_chars(text, &out.control_chars_removed);
  if (o.remove_boilerplate) text = remove_boilerplate_lines(text, o.boilerplate_max_words, &out.boilerplate_lines_removed);
  if (o.mask_emails) text = mask_emails(text, &out.emails_masked);
  if (o.mask_phones) text = mask_phones(text, &out.phones_masked);

  const int64_t chars = count_code_points(text);
  if (is_blank(text)) out.reason = DropReason::empty;
  else if (chars < o.min_chars) out.reason = DropReason::too_short;
  else if (chars > o.max_chars) out.reason = DropReason::too_long;
  else if (non_letter_fraction(text) > o.max_non_letter_fraction) out.reason = DropReason::non_letter;
  else if (o.repetition && fails_repetition(text, o)) out.reason = DropReason::repetition;
  else if (o.drop_code && looks_like_code(text, o.max_code_line_fraction)) out.reason = DropReason::code;
  return out;
}

}  // namespace ld::data
