#pragma once
// The few pieces of Unicode text handling the metrics need to agree with their Python references:
// Python's str.split() whitespace, code points (chrF counts characters, not bytes) and lowercasing.
// Input is UTF-8; an invalid byte is kept as a character of its own, so no text is dropped.
#include <string>
#include <string_view>
#include <vector>

namespace ld::eval {

// Python's str.isspace() for one code point (ASCII whitespace, \x1c-\x1f, NEL, NBSP, the Zs spaces,
// the line and paragraph separators).
bool is_python_whitespace(char32_t cp);

// The text cut into characters: each view holds one code point's bytes (or one invalid byte).
std::vector<std::string_view> utf8_characters(std::string_view text);

// Python's text.split(): the runs between whitespace, none of them empty.
std::vector<std::string> split_whitespace(std::string_view text);

// Python's text.rstrip(): trailing whitespace removed.
std::string_view rstrip_whitespace(std::string_view text);

// Python's text.lower() for the one-to-one mappings (utf8proc's simple lowercase; the rare characters
// whose lowercase is two code points, such as U+0130, keep a one-code-point mapping).
std::string to_lower(std::string_view text);

}  // namespace ld::eval
