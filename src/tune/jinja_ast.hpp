#pragma once
// The parsed form of a template: expressions and statements, each remembering its source line for
// error messages.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tune/jinja_value.hpp"

namespace ld::tune::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  literal,    // value
  name,       // name
  list,       // args (tuple when `tuple`)
  dict,       // args: key, value, key, value, ...
  attribute,  // a.name
  item,       // a[b]
  slice,      // a[args[0]:args[1]:args[2]], null parts omitted
  call,       // a(args, kwargs)
  filter,     // a | name(args, kwargs)
  test,       // a is [not] name(args); `negated`
  unary,      // name in {"-", "+", "not"} applied to a
  binary,     // a name b, name an arithmetic operator, "~", "and", "or"
  compare,    // args[0] ops[0] args[1] ops[1] args[2] ...
  conditional,  // b if a else c (c may be null: undefined)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  std::string name;
  Value value;
  bool tuple = false;
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind { text, output, if_, for_, set, macro, break_, continue_, block };

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null when required
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;                  // text
  ExprPtr expr;                      // output, for (iterable), set (value)
  std::vector<std::string> targets;  // for / set targets; set ns.attr has targets {ns, attr} and `attribute`
  bool attribute = false;
  ExprPtr filter;                    // for ... if filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // if / elif
  Body body;                         // for, macro, block; if's else
  Body else_body;                    // for's else
  std::string name;                  // macro
  std::vector<MacroParam> params;    // macro
};

struct Program {
  std::string origin;
  Body body;
};

}  // namespace ld::tune::jinja
