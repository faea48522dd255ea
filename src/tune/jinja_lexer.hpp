#pragma once
// Splits a template into tokens the way Jinja's lexer does with trim_blocks and lstrip_blocks on:
// text between tags (with '-'/'+' whitespace control, trim_blocks and lstrip_blocks already
// applied), the tag delimiters, and the names, literals and operators inside tags. Comments are
// dropped. Newlines are normalised to '\n' and one trailing newline is removed, as Jinja does.
#include <string>
#include <vector>

namespace ld::tune::jinja {

enum class TokenType { text, variable_begin, variable_end, block_begin, block_end, name, string, integer, real, op, eof };

struct Token {
  TokenType type;
  std::string value;  // text, name, operator, decoded string literal, or digits of a number
  int line;
};

// Throws an ld::Error "<origin>:<line>: <problem>" on a lexical error.
std::vector<Token> tokenize(const std::string& source, const std::string& origin);

}  // namespace ld::tune::jinja
