#include "tune/jinja.hpp"

#include "tune/jinja_ast.hpp"
#include "tune/jinja_eval.hpp"
#include "tune/jinja_lexer.hpp"
#include "tune/jinja_parser.hpp"

namespace ld::tune::jinja {

Template::Template(const std::string& source, const std::string& origin)
    : program_(parse(tokenize(source, origin), origin)) {}

std::string Template::render(const nlohmann::json& context) const {
  return render_program(*program_, Value::from_json(context));
}

std::string Template::render_ordered(const nlohmann::ordered_json& context) const {
  return render_program(*program_, Value::from_json(context));
}

}  // namespace ld::tune::jinja
