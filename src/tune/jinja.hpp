#pragma once
// A Jinja2 subset, enough for the chat templates in Hugging Face tokenizer_config.json files.
// Rendering matches transformers' settings: ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]) with the globals raise_exception(msg) and
// strftime_now(fmt) and a tojson filter (json.dumps with ensure_ascii=False).
//
// Supported: text, {{ }}, {% %}, {# #}, '-'/'+' whitespace control; for (loop.*, else, break,
// continue, `if` filter, tuple unpacking), if/elif/else, set (incl. namespace attributes), macros
// (positional/keyword arguments, defaults), transformers' {% generation %} (renders its body).
// Expressions: literals, attribute/subscript/slice access, arithmetic, ~, comparisons, and/or/not,
// in, tests (is defined, is none, ...), a if c else b, the common filters and the str/dict methods
// templates use. Anything else (include, raw, call blocks, unknown filters or methods) is an
// ld::Error naming the construct. Known limits, each an error rather than wrong output: integers
// are 64-bit (overflow is an error), str % formatting and str.format are unsupported.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace ld::tune::jinja {

struct Program;  // the parsed template (jinja_ast.hpp)

class Template {
 public:
  // Parses `source`; a syntax error is an ld::Error naming `origin` (e.g. the tokenizer_config.json
  // path), the line and the problem.
  Template(const std::string& source, const std::string& origin);

  // Renders with `context` (an nlohmann::json object: messages, add_generation_prompt, ...).
  // Errors (raise_exception, type errors, unsupported constructs) are ld::Error naming the origin
  // and the line.
  std::string render(const nlohmann::json& context) const;
  // The same with the keys of every object in document order. nlohmann::json sorts keys, while
  // transformers keeps the order of the dataset's JSON, which `tojson` and `.items()` loops expose
  // (tool schemas, tool-call arguments): parse with ordered_json to render those byte-identically.
  std::string render_ordered(const nlohmann::ordered_json& context) const;

 private:
  // Shared and immutable, so a Template is cheap to copy and safe to render from many threads.
  std::shared_ptr<const Program> program_;
};

}  // namespace ld::tune::jinja
