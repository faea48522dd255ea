#pragma once
// Python str operations on UTF-8 strings. Case mapping covers ASCII, Latin-1, Latin Extended-A,
// Greek and Cyrillic (and 'ß' -> 'SS'); letters of other scripts with case are left as they are.
#include <optional>
#include <string>
#include <vector>

namespace ld::tune::jinja {

// str.strip/lstrip/rstrip: whitespace, or the code points in `chars` when `use_chars`.
std::string strip_chars(const std::string& s, const std::string& chars, bool use_chars, bool left, bool right);
// str.split(sep, maxsplit): on runs of whitespace (dropping empty parts) when sep is nullopt.
std::vector<std::string> split_string(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> split_lines(const std::string& s);
// str.replace(old, new, count); count < 0 replaces all.
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count);
std::string to_upper(const std::string& s);
std::string to_lower(const std::string& s);
std::string to_title(const std::string& s);
std::string capitalize(const std::string& s);

}  // namespace ld::tune::jinja
