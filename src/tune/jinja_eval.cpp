#include "tune/jinja_eval.hpp"

#include <algorithm>
#include <map>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"
#include "tune/jinja_globals.hpp"

namespace ld::tune::jinja {

namespace {

enum class Flow { normal, break_, continue_ };

class Renderer {
 public:
  Renderer(const Program& program, const Value& context) : program_(program) {
    LD_CHECK(context.kind == Kind::dict || context.kind == Kind::none, program.origin,
             ": the render context must be a JSON object, got ", type_name(context));
    frames_.emplace_back(global_functions());
    frames_.emplace_back();
    if (context.kind == Kind::dict)
      for (const auto& [k, v] : context.dict->items) frames_.back()[k] = v;
  }

  std::string run() {
    std::string out;
    try {
      const Flow flow = exec_body(program_.body, out);
      LD_CHECK(flow == Flow::normal, "'break'/'continue' outside a for loop");
    } catch (const Error& e) {
      LD_FAIL(program_.origin, ":", line_, ": ", e.what());
    }
    return out;
  }

 private:
  using Frame = std::map<std::string, Value>;

  Flow exec_body(const Body& body, std::string& out) {
    for (const auto& stmt : body)
      if (const Flow flow = exec(*stmt, out); flow != Flow::normal) return flow;
    return Flow::normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    line_ = s.line;
    switch (s.kind) {
      case StmtKind::text: out += s.text; return Flow::normal;
      case StmtKind::output: out += to_str(eval(*s.expr)); return Flow::normal;
      case StmtKind::if_: return exec_if(s, out);
      case StmtKind::for_: exec_for(s, out); return Flow::normal;
      case StmtKind::set: exec_set(s); return Flow::normal;
      case StmtKind::macro: define_macro(s); return Flow::normal;
      case StmtKind::break_: return Flow::break_;
      case StmtKind::continue_: return Flow::continue_;
      case StmtKind::block: return exec_body(s.body, out);
    }
    return Flow::normal;
  }

  Flow exec_if(const Stmt& s, std::string& out) {
    for (const auto& [cond, body] : s.branches)
      if (truthy(eval(*cond))) return exec_body(body, out);
    return exec_body(s.body, out);
  }

  void bind_targets(const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
      frames_.back()[targets[0]] = item;
      return;
    }
    const std::vector<Value> parts = iterate(item);
    LD_CHECK(parts.size() == targets.size(), "cannot unpack ", parts.size(), " values into ", targets.size(), " names");
    for (size_t i = 0; i < targets.size(); ++i) frames_.back()[targets[i]] = parts[i];
  }

  // The items the loop visits: the iterable, filtered by the `if` clause when there is one.
  std::vector<Value> loop_items(const Stmt& s) {
    std::vector<Value> all = iterate(eval(*s.expr));
    if (!s.filter) return all;
    std::vector<Value> kept;
    for (const Value& item : all) {
      frames_.emplace_back();
      bind_targets(s.targets, item);
      if (truthy(eval(*s.filter))) kept.push_back(item);
      frames_.pop_back();
    }
    return kept;
  }

  static Value loop_object(const std::vector<Value>& items, size_t i) {
    const auto n = static_cast<int64_t>(items.size());
    const auto k = static_cast<int64_t>(i);
    Value loop = Value::new_dict();
    DictData& d = *loop.dict;
    d.set("index0", Value::from_int(k));
    d.set("index", Value::from_int(k + 1));
    d.set("revindex0", Value::from_int(n - k - 1));
    d.set("revindex", Value::from_int(n - k));
    d.set("first", Value::from_bool(k == 0));
    d.set("last", Value::from_bool(k == n - 1));
    d.set("length", Value::from_int(n));
    d.set("depth", Value::from_int(1));
    d.set("depth0", Value::from_int(0));
    d.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    d.set("nextitem", i + 1 < items.size() ? items[i + 1] : Value::undefined("there is no next item"));
    d.set("cycle", Value::from_function("loop.cycle", [k](const CallArgs& args) {
            LD_CHECK(!args.positional.empty(), "loop.cycle: no items given");
            return args.positional[static_cast<size_t>(k) % args.positional.size()];
          }));
    return loop;
  }

  void exec_for(const Stmt& s, std::string& out) {
    const std::vector<Value> items = loop_items(s);
    for (size_t i = 0; i < items.size(); ++i) {
      frames_.emplace_back();  // a fresh scope per iteration, as Jinja's loop body has
      frames_.back()["loop"] = loop_object(items, i);
      bind_targets(s.targets, items[i]);
      const Flow flow = exec_body(s.body, out);
      frames_.pop_back();
      if (flow == Flow::break_) break;
    }
    if (items.empty()) {
      frames_.emplace_back();
      exec_body(s.else_body, out);
      frames_.pop_back();
    }
  }

  void exec_set(const Stmt& s) {
    const Value value = eval(*s.expr);
    if (!s.attribute) return bind_targets(s.targets, value);
    const Value target = lookup(s.targets[0]);
    LD_CHECK(target.kind == Kind::ns, "cannot assign attribute '", s.targets[1], "' on a non-namespace object (",
             type_name(target), ")");
    target.dict->set(s.targets[1], value);
  }

  void define_macro(const Stmt& s) {
    frames_.back()[s.name] = Value::from_function(s.name, [this, &s](const CallArgs& args) { return call_macro(s, args); });
  }

  Value call_macro(const Stmt& s, const CallArgs& args) {
    // Python stops runaway recursion with a RecursionError; here it would overflow the C++ stack.
    LD_CHECK(macro_depth_ < kMaxMacroDepth, "macro '", s.name, "' nested deeper than ", kMaxMacroDepth, " calls");
    ++macro_depth_;
    Value result = run_macro(s, args);
    --macro_depth_;
    return result;
  }

  Value run_macro(const Stmt& s, const CallArgs& args) {
    LD_CHECK(args.positional.size() <= s.params.size(), "macro '", s.name, "' takes ", s.params.size(),
             " arguments, got ", args.positional.size());
    for (const auto& [key, value] : args.keyword) {
      const bool known = std::any_of(s.params.begin(), s.params.end(), [&](const MacroParam& p) { return p.name == key; });
      LD_CHECK(known, "macro '", s.name, "' takes no keyword argument '", key, "'");
    }
    Frame frame;
    for (size_t i = 0; i < s.params.size(); ++i) {
      const MacroParam& p = s.params[i];
      const Value* given = args.get(i, p.name);
      frame[p.name] = given ? *given : p.default_value ? eval(*p.default_value)
                                                       : Value::undefined("'" + p.name + "' is undefined");
    }
    // The macro sees the globals and the template's top-level names, not the caller's locals.
    std::vector<Frame> saved(frames_.begin() + 2, frames_.end());
    frames_.resize(2);
    frames_.push_back(std::move(frame));
    std::string out;
    const int line = line_;
    exec_body(s.body, out);
    frames_.resize(2);
    frames_.insert(frames_.end(), saved.begin(), saved.end());
    line_ = line;
    return Value::from_string(out);
  }

  Value lookup(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
      if (auto found = it->find(name); found != it->end()) return found->second;
    return Value::undefined("'" + name + "' is undefined");
  }

  CallArgs eval_args(const Expr& e) {
    CallArgs args;
    for (const auto& a : e.args) args.positional.push_back(eval(*a));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
    return args;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case ExprKind::literal: return e.value;
      case ExprKind::name: return lookup(e.name);
      case ExprKind::list: return eval_list(e);
      case ExprKind::dict: return eval_dict(e);
      case ExprKind::attribute: return attribute(eval(*e.a), e.name);
      case ExprKind::item: return subscript(eval(*e.a), eval(*e.b));
      case ExprKind::slice: return eval_slice(e);
      case ExprKind::call: return eval_call(e);
      case ExprKind::filter: return apply_filter(e.name, eval(*e.a), eval_args(e));
      case ExprKind::test: return Value::from_bool(apply_test(e.name, eval(*e.a), eval_args(e)) != e.negated);
      case ExprKind::unary: return eval_unary(e);
      case ExprKind::binary: return eval_binary(e);
      case ExprKind::compare: return eval_compare(e);
      case ExprKind::conditional:
        if (truthy(eval(*e.a))) return eval(*e.b);
        return e.c ? eval(*e.c) : Value::undefined("the conditional expression has no else branch");
    }
    return Value();
  }

  Value eval_list(const Expr& e) {
    std::vector<Value> items;
    for (const auto& a : e.args) items.push_back(eval(*a));
    return Value::from_list(std::move(items), e.tuple);
  }

  Value eval_dict(const Expr& e) {
    Value d = Value::new_dict();
    for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
      const Value key = eval(*e.args[i]);
      LD_CHECK(key.kind == Kind::string, "dict literal keys must be strings here, got ", type_name(key));
      d.dict->set(key.str, eval(*e.args[i + 1]));
    }
    return d;
  }

  Value eval_slice(const Expr& e) {
    Value parts[3];
    for (size_t i = 0; i < 3; ++i)
      if (e.args[i]) parts[i] = eval(*e.args[i]);
    return slice(eval(*e.a), parts[0], parts[1], parts[2]);
  }

  Value eval_call(const Expr& e) {
    const Value callee = eval(*e.a);
    require_defined(callee);
    LD_CHECK(callee.kind == Kind::function, "'", type_name(callee), "' object is not callable");
    const CallArgs args = eval_args(e);
    return (*callee.function)(args);
  }

  Value eval_unary(const Expr& e) {
    const Value v = eval(*e.a);
    if (e.name == "not") return Value::from_bool(!truthy(v));
    require_defined(v);
    LD_CHECK(v.is_number(), "bad operand type for unary ", e.name, ": '", type_name(v), "'");
    if (e.name == "+") return v;
    if (v.kind == Kind::real) return Value::from_real(-v.real);  // keeps -0.0, as Python does
    return arithmetic("-", Value::from_int(0), v);
  }

  Value eval_binary(const Expr& e) {
    if (e.name == "and") {
      Value a = eval(*e.a);
      return truthy(a) ? eval(*e.b) : a;
    }
    if (e.name == "or") {
      Value a = eval(*e.a);
      return truthy(a) ? a : eval(*e.b);
    }
    const Value a = eval(*e.a);
    const Value b = eval(*e.b);
    if (e.name == "~") return Value::from_string(to_str(a) + to_str(b));
    return arithmetic(e.name, a, b);
  }

  static bool contains(const Value& container, const Value& item) {
    if (container.kind == Kind::string) {
      LD_CHECK(item.kind == Kind::string, "'in <string>' requires string as left operand, not ", type_name(item));
      return container.str.find(item.str) != std::string::npos;
    }
    if (container.kind == Kind::dict) return item.kind == Kind::string && container.dict->find(item.str) != nullptr;
    for (const Value& v : iterate(container))
      if (equal(v, item)) return true;
    return false;
  }

  static bool compare_once(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    require_defined(a);
    require_defined(b);
    const int c = compare(a, b);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  // Python's chained comparison: a < b < c is (a < b) and (b < c).
  Value eval_compare(const Expr& e) {
    Value lhs = eval(*e.args[0]);
    for (size_t i = 0; i < e.ops.size(); ++i) {
      Value rhs = eval(*e.args[i + 1]);
      if (!compare_once(e.ops[i], lhs, rhs)) return Value::from_bool(false);
      lhs = std::move(rhs);
    }
    return Value::from_bool(true);
  }

  const Program& program_;
  std::vector<Frame> frames_;  // [0] globals, [1] the context and top-level sets, then nested scopes
  int line_ = 1;
  static constexpr int kMaxMacroDepth = 200;
  int macro_depth_ = 0;
};

}  // namespace

std::string render_program(const Program& program, const Value& context) {
  return Renderer(program, context).run();
}

}  // namespace ld::tune::jinja
