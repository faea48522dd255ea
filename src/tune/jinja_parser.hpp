#pragma once
// Builds the statement tree from the tokens, following Jinja's grammar and operator precedence
// (or < and < not < comparisons < + - < ~ < * / // % < ** < unary < filters/tests/postfix).
#include <memory>
#include <string>
#include <vector>

#include "tune/jinja_ast.hpp"
#include "tune/jinja_lexer.hpp"

namespace ld::tune::jinja {

// Throws an ld::Error "<origin>:<line>: template syntax error: <problem>" on bad syntax or an
// unsupported tag.
std::unique_ptr<Program> parse(const std::vector<Token>& tokens, const std::string& origin);

}  // namespace ld::tune::jinja
