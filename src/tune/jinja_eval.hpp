#pragma once
// Runs a parsed template: statements write to the output, expressions evaluate to Values.
// Scoping follows Jinja: {% set %} in a for body lasts for one iteration and does not leak out,
// if-blocks share their enclosing scope, macros see the template's top-level names.
#include <string>

#include "tune/jinja_ast.hpp"

namespace ld::tune::jinja {

// Renders `program` with the variables of `context` (a dict, or none for no variables), plus the
// globals raise_exception, strftime_now, namespace, range and dict. Errors are ld::Error
// "<origin>:<line>: <problem>".
std::string render_program(const Program& program, const Value& context);

}  // namespace ld::tune::jinja
