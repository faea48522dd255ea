#include "tune/jinja_parser.hpp"

#include <cstdlib>
#include <set>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"

namespace ld::tune::jinja {

namespace {

ExprPtr make_expr(ExprKind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& origin) : tokens_(tokens), origin_(origin) {}

  std::unique_ptr<Program> run() {
    auto program = std::make_unique<Program>();
    program->origin = origin_;
    std::string end;
    program->body = parse_body({}, end);
    return program;
  }

 private:
  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  const Token& next() { return tokens_[std::min(pos_++, tokens_.size() - 1)]; }

  [[noreturn]] void fail(const std::string& problem) const {
    LD_FAIL(origin_, ":", peek().line, ": template syntax error: ", problem);
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::eof: return "end of template";
      case TokenType::block_end: return "end of statement block";
      case TokenType::variable_end: return "end of print statement";
      case TokenType::text: return "template text";
      case TokenType::string: return "string";
      default: return "'" + t.value + "'";
    }
  }

  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::op && peek(ahead).value == op;
  }
  bool is_name(const char* name, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::name && peek(ahead).value == name;
  }
  bool skip_op(const char* op) { return is_op(op) ? (++pos_, true) : false; }
  bool skip_name(const char* name) { return is_name(name) ? (++pos_, true) : false; }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail(std::string("expected '") + op + "', got " + describe(peek()));
  }
  void expect_type(TokenType type, const std::string& what) {
    if (peek().type != type) fail("expected " + what + ", got " + describe(peek()));
    ++pos_;
  }
  std::string expect_identifier() {
    if (peek().type != TokenType::name) fail("expected a name, got " + describe(peek()));
    return next().value;
  }

  // ---- statements ----

  static std::string quoted_list(const std::set<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "'" : ", '") + n + "'";
    return out;
  }

  // Parses statements until a block tag whose name is in `ends` (returned in `end`, the tag name
  // consumed but not its end) or the end of the template when `ends` is empty.
  Body parse_body(const std::set<std::string>& ends, std::string& end) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::eof) {
        if (!ends.empty()) fail("unexpected end of template, looking for one of the tags " + quoted_list(ends));
        return body;
      }
      if (t.type == TokenType::text) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::text;
        s->line = t.line;
        s->text = next().value;
        body.push_back(std::move(s));
      } else if (t.type == TokenType::variable_begin) {
        body.push_back(parse_output());
      } else {
        ++pos_;  // block_begin
        if (peek().type == TokenType::name && ends.count(peek().value)) {
          end = next().value;
          return body;
        }
        body.push_back(parse_statement());
      }
    }
  }

  std::unique_ptr<Stmt> new_stmt(StmtKind kind) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = peek().line;
    return s;
  }

  std::unique_ptr<Stmt> parse_output() {
    ++pos_;
    auto s = new_stmt(StmtKind::output);
    s->expr = parse_tuple_or_expression();
    expect_type(TokenType::variable_end, "end of print statement '}}'");
    return s;
  }

  std::unique_ptr<Stmt> parse_statement() {
    if (peek().type != TokenType::name) fail("tag name expected, got " + describe(peek()));
    const std::string tag = peek().value;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "break" || tag == "continue") return parse_loop_control(tag);
    if (tag == "generation") return parse_generation();
    fail("unknown or unsupported tag '" + tag + "'");
  }

  void end_tag() { expect_type(TokenType::block_end, "end of statement block '%}'"); }

  std::unique_ptr<Stmt> parse_if() {
    auto s = new_stmt(StmtKind::if_);
    ++pos_;
    while (true) {
      ExprPtr cond = parse_tuple_or_expression();
      end_tag();
      std::string end;
      Body body = parse_body({"elif", "else", "endif"}, end);
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") continue;
      if (end == "else") {
        end_tag();
        s->body = parse_body({"endif"}, end);
      }
      end_tag();
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> targets{expect_identifier()};
    while (skip_op(",")) targets.push_back(expect_identifier());
    return targets;
  }

  std::unique_ptr<Stmt> parse_for() {
    auto s = new_stmt(StmtKind::for_);
    ++pos_;
    const bool parenthesized = skip_op("(");
    s->targets = parse_targets();
    if (parenthesized) expect_op(")");
    if (!skip_name("in")) fail("expected 'in' in for loop, got " + describe(peek()));
    s->expr = parse_expression(false);
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) fail("recursive for loops are not supported");
    end_tag();
    std::string end;
    s->body = parse_body({"else", "endfor"}, end);
    if (end == "else") {
      end_tag();
      s->else_body = parse_body({"endfor"}, end);
    }
    end_tag();
    return s;
  }

  std::unique_ptr<Stmt> parse_set() {
    auto s = new_stmt(StmtKind::set);
    ++pos_;
    s->targets.push_back(expect_identifier());
    if (skip_op(".")) {
      s->targets.push_back(expect_identifier());
      s->attribute = true;
    } else {
      while (skip_op(",")) s->targets.push_back(expect_identifier());
    }
    if (!is_op("=")) fail("block assignments ({% set x %}...{% endset %}) and filtered sets are not supported");
    ++pos_;
    s->expr = parse_tuple_or_expression();
    end_tag();
    return s;
  }

  std::unique_ptr<Stmt> parse_macro() {
    auto s = new_stmt(StmtKind::macro);
    ++pos_;
    s->name = expect_identifier();
    expect_op("(");
    while (!skip_op(")")) {
      if (!s->params.empty()) expect_op(",");
      MacroParam p{expect_identifier(), nullptr};
      if (skip_op("=")) p.default_value = parse_expression(true);
      s->params.push_back(std::move(p));
    }
    end_tag();
    std::string end;
    s->body = parse_body({"endmacro"}, end);
    end_tag();
    return s;
  }

  std::unique_ptr<Stmt> parse_loop_control(const std::string& tag) {
    auto s = new_stmt(tag == "break" ? StmtKind::break_ : StmtKind::continue_);
    ++pos_;
    end_tag();
    return s;
  }

  // transformers' {% generation %} marks assistant text for masks; rendering just emits the body.
  std::unique_ptr<Stmt> parse_generation() {
    auto s = new_stmt(StmtKind::block);
    ++pos_;
    end_tag();
    std::string end;
    s->body = parse_body({"endgeneration"}, end);
    end_tag();
    return s;
  }

  // ---- expressions ----

  // `a, b` without parentheses is a tuple, as in {{ a, b }} or {% set x = 1, 2 %}.
  ExprPtr parse_tuple_or_expression() {
    const int line = peek().line;
    ExprPtr first = parse_expression(true);
    if (!is_op(",")) return first;
    auto t = make_expr(ExprKind::list, line);
    t->tuple = true;
    t->args.push_back(std::move(first));
    while (skip_op(",")) t->args.push_back(parse_expression(true));
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_conditional() : parse_or();
  }

  ExprPtr parse_conditional() {
    ExprPtr value = parse_or();
    while (is_name("if")) {
      auto c = make_expr(ExprKind::conditional, next().line);
      c->a = parse_or();
      c->b = std::move(value);
      if (skip_name("else")) c->c = parse_conditional();
      value = std::move(c);
    }
    return value;
  }

  ExprPtr binary(const std::string& op, ExprPtr lhs, ExprPtr rhs, int line) {
    auto e = make_expr(ExprKind::binary, line);
    e->name = op;
    e->a = std::move(lhs);
    e->b = std::move(rhs);
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr lhs = parse_and();
    while (is_name("or")) {
      const int line = next().line;
      lhs = binary("or", std::move(lhs), parse_and(), line);
    }
    return lhs;
  }

  ExprPtr parse_and() {
    ExprPtr lhs = parse_not();
    while (is_name("and")) {
      const int line = next().line;
      lhs = binary("and", std::move(lhs), parse_not(), line);
    }
    return lhs;
  }

  ExprPtr parse_not() {
    if (!is_name("not")) return parse_compare();
    auto e = make_expr(ExprKind::unary, next().line);
    e->name = "not";
    e->a = parse_not();
    return e;
  }

  // The comparison operator at the cursor ("in", "not in", "==", ...), or "" when none.
  std::string compare_op() const {
    static const std::set<std::string> kOps = {"==", "!=", "<", "<=", ">", ">="};
    if (peek().type == TokenType::op && kOps.count(peek().value)) return peek().value;
    if (is_name("in")) return "in";
    if (is_name("not") && is_name("in", 1)) return "not in";
    return "";
  }

  ExprPtr parse_compare() {
    const int line = peek().line;
    ExprPtr first = parse_math1();
    if (compare_op().empty()) return first;
    auto e = make_expr(ExprKind::compare, line);
    e->args.push_back(std::move(first));
    for (std::string op = compare_op(); !op.empty(); op = compare_op()) {
      pos_ += op == "not in" ? 2 : 1;
      e->ops.push_back(op);
      e->args.push_back(parse_math1());
    }
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr lhs = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      lhs = binary(t.value, std::move(lhs), parse_concat(), t.line);
    }
    return lhs;
  }

  ExprPtr parse_concat() {
    ExprPtr lhs = parse_math2();
    while (is_op("~")) {
      const int line = next().line;
      lhs = binary("~", std::move(lhs), parse_math2(), line);
    }
    return lhs;
  }

  ExprPtr parse_math2() {
    ExprPtr lhs = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      lhs = binary(t.value, std::move(lhs), parse_pow(), t.line);
    }
    return lhs;
  }

  ExprPtr parse_pow() {
    ExprPtr lhs = parse_unary(true);
    while (is_op("**")) {
      const int line = next().line;
      lhs = binary("**", std::move(lhs), parse_unary(true), line);
    }
    return lhs;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make_expr(ExprKind::unary, peek().line);
      e->name = next().value;
      e->a = parse_unary(false);
    } else {
      e = parse_postfix(parse_primary());
    }
    return with_filter ? parse_filter_expr(std::move(e)) : std::move(e);
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case TokenType::name: return parse_name();
      case TokenType::string: return parse_strings();
      case TokenType::integer:
      case TokenType::real: return parse_number();
      case TokenType::op:
        if (t.value == "(") return parse_parenthesized();
        if (t.value == "[") return parse_list();
        if (t.value == "{") return parse_dict();
        [[fallthrough]];
      default: fail("unexpected " + describe(t));
    }
  }

  ExprPtr literal(Value v, int line) {
    auto e = make_expr(ExprKind::literal, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_name() {
    const Token& t = next();
    if (t.value == "true" || t.value == "True") return literal(Value::from_bool(true), t.line);
    if (t.value == "false" || t.value == "False") return literal(Value::from_bool(false), t.line);
    if (t.value == "none" || t.value == "None") return literal(Value::none(), t.line);
    auto e = make_expr(ExprKind::name, t.line);
    e->name = t.value;
    return e;
  }

  // Adjacent string literals concatenate, as in Python.
  ExprPtr parse_strings() {
    const int line = peek().line;
    std::string s;
    while (peek().type == TokenType::string) s += next().value;
    return literal(Value::from_string(s), line);
  }

  ExprPtr parse_number() {
    const Token& t = next();
    if (t.type == TokenType::real) return literal(Value::from_real(std::strtod(t.value.c_str(), nullptr)), t.line);
    try {
      return literal(Value::from_int(std::stoll(t.value)), t.line);
    } catch (const std::out_of_range&) {
      fail("integer literal out of the 64-bit range: " + t.value);
    }
  }

  ExprPtr parse_parenthesized() {
    const int line = next().line;
    if (skip_op(")")) {
      auto t = make_expr(ExprKind::list, line);
      t->tuple = true;
      return t;
    }
    ExprPtr first = parse_expression(true);
    if (skip_op(")")) return first;
    auto t = make_expr(ExprKind::list, line);
    t->tuple = true;
    t->args.push_back(std::move(first));
    while (skip_op(",") && !is_op(")")) t->args.push_back(parse_expression(true));
    expect_op(")");
    return t;
  }

  ExprPtr parse_list() {
    auto e = make_expr(ExprKind::list, next().line);
    while (!skip_op("]")) {
      if (!e->args.empty()) expect_op(",");
      if (skip_op("]")) break;  // trailing comma
      e->args.push_back(parse_expression(true));
    }
    return e;
  }

  ExprPtr parse_dict() {
    auto e = make_expr(ExprKind::dict, next().line);
    while (!skip_op("}")) {
      if (!e->args.empty()) expect_op(",");
      if (skip_op("}")) break;
      e->args.push_back(parse_expression(true));
      expect_op(":");
      e->args.push_back(parse_expression(true));
    }
    return e;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        e = parse_dot(std::move(e));
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_dot(ExprPtr obj) {
    const int line = next().line;
    const Token& t = next();
    if (t.type == TokenType::integer) {  // a.0 is a[0]
      auto e = make_expr(ExprKind::item, line);
      e->a = std::move(obj);
      e->b = literal(Value::from_int(std::stoll(t.value)), line);
      return e;
    }
    if (t.type != TokenType::name) fail("expected an attribute name after '.', got " + describe(t));
    auto e = make_expr(ExprKind::attribute, line);
    e->a = std::move(obj);
    e->name = t.value;
    return e;
  }

  ExprPtr parse_slice_part() {
    return is_op(":") || is_op("]") ? nullptr : parse_expression(true);
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const int line = next().line;
    ExprPtr start = parse_slice_part();
    if (start && skip_op("]")) {
      auto e = make_expr(ExprKind::item, line);
      e->a = std::move(obj);
      e->b = std::move(start);
      return e;
    }
    auto e = make_expr(ExprKind::slice, line);
    e->a = std::move(obj);
    e->args.push_back(std::move(start));
    expect_op(":");
    e->args.push_back(parse_slice_part());
    e->args.push_back(skip_op(":") ? parse_slice_part() : nullptr);
    expect_op("]");
    return e;
  }

  // Arguments in parentheses: positional, then name=value.
  void parse_arguments(Expr& e) {
    expect_op("(");
    while (!skip_op(")")) {
      if (!e.args.empty() || !e.kwargs.empty()) expect_op(",");
      if (skip_op(")")) break;
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported");
      if (peek().type == TokenType::name && is_op("=", 1)) {
        std::string key = next().value;
        ++pos_;
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail("positional argument after a keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = make_expr(ExprKind::call, peek().line);
    e->a = std::move(callee);
    parse_arguments(*e);
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::string dotted_name() {
    std::string name = expect_identifier();
    while (is_op(".") && peek(1).type == TokenType::name) {
      pos_ += 1;
      name += "." + next().value;
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr value) {
    auto e = make_expr(ExprKind::filter, next().line);
    e->a = std::move(value);
    e->name = dotted_name();
    if (!is_filter(e->name)) fail("no filter named '" + e->name + "'");
    if (is_op("(")) parse_arguments(*e);
    return e;
  }

  bool starts_test_argument() const {
    const Token& t = peek();
    if (t.type == TokenType::name) return t.value != "else" && t.value != "or" && t.value != "and";
    if (t.type == TokenType::op) return t.value == "(" || t.value == "[" || t.value == "{";
    return t.type == TokenType::string || t.type == TokenType::integer || t.type == TokenType::real;
  }

  ExprPtr parse_test(ExprPtr value) {
    auto e = make_expr(ExprKind::test, next().line);
    e->a = std::move(value);
    e->negated = skip_name("not");
    e->name = dotted_name();
    if (!is_test(e->name)) fail("no test named '" + e->name + "'");
    if (is_op("(")) {
      parse_arguments(*e);
    } else if (starts_test_argument()) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  const std::vector<Token>& tokens_;
  const std::string& origin_;
  size_t pos_ = 0;
};

}  // namespace

std::unique_ptr<Program> parse(const std::vector<Token>& tokens, const std::string& origin) {
  return Parser(tokens, origin).run();
}

}  // namespace ld::tune::jinja
