// Jinja's tests ({{ x is defined }}, {{ n is divisibleby 3 }}, ...).
#include <map>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"
#include "tune/jinja_strings.hpp"

namespace ld::tune::jinja {

namespace {

using Test = bool (*)(const Value& v, const CallArgs& args);

const Value& arg(const CallArgs& args, const char* test) {
  LD_CHECK(!args.positional.empty(), "the test '", test, "' needs an argument");
  return args.positional[0];
}

bool integral(const Value& v) { return v.kind == Kind::integer; }

int64_t int_of(const Value& v, const char* test) {
  LD_CHECK(v.kind == Kind::integer || v.kind == Kind::boolean, "the test '", test, "' needs an integer, got ",
           type_name(v));
  return v.kind == Kind::integer ? v.integer : v.boolean;
}

// `x is sameas y`: Python identity; for the singletons and scalars that is equality of kind and value.
bool same_as(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  if (a.kind == Kind::list) return a.list == b.list;
  if (a.kind == Kind::dict || a.kind == Kind::ns) return a.dict == b.dict;
  if (a.kind == Kind::function) return a.function == b.function;
  return equal(a, b);
}

bool has_case_letters(const std::string& s) { return to_lower(s) != to_upper(s); }

const std::map<std::string, Test>& tests() {
  static const std::map<std::string, Test> kTests = {
      {"defined", [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) { return v.kind == Kind::none; }},
      {"boolean", [](const Value& v, const CallArgs&) { return v.kind == Kind::boolean; }},
      {"true", [](const Value& v, const CallArgs&) { return v.kind == Kind::boolean && v.boolean; }},
      {"false", [](const Value& v, const CallArgs&) { return v.kind == Kind::boolean && !v.boolean; }},
      {"integer", [](const Value& v, const CallArgs&) { return integral(v); }},
      {"float", [](const Value& v, const CallArgs&) { return v.kind == Kind::real; }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"string", [](const Value& v, const CallArgs&) { return v.kind == Kind::string; }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.kind == Kind::dict; }},
      {"sequence", [](const Value& v, const CallArgs&) {
         return v.kind == Kind::string || v.kind == Kind::list || v.kind == Kind::dict;
       }},
      {"iterable", [](const Value& v, const CallArgs&) {
         return v.is_undefined() || v.kind == Kind::string || v.kind == Kind::list || v.kind == Kind::dict;
       }},
      {"callable", [](const Value& v, const CallArgs&) { return v.kind == Kind::function; }},
      {"sameas", [](const Value& v, const CallArgs& a) { return same_as(v, arg(a, "sameas")); }},
      {"eq", [](const Value& v, const CallArgs& a) { return equal(v, arg(a, "eq")); }},
      {"ne", [](const Value& v, const CallArgs& a) { return !equal(v, arg(a, "ne")); }},
      {"lt", [](const Value& v, const CallArgs& a) { return compare(v, arg(a, "lt")) < 0; }},
      {"le", [](const Value& v, const CallArgs& a) { return compare(v, arg(a, "le")) <= 0; }},
      {"gt", [](const Value& v, const CallArgs& a) { return compare(v, arg(a, "gt")) > 0; }},
      {"ge", [](const Value& v, const CallArgs& a) { return compare(v, arg(a, "ge")) >= 0; }},
      {"in", [](const Value& v, const CallArgs& a) {
         const Value& c = arg(a, "in");
         if (c.kind == Kind::string) return v.kind == Kind::string && c.str.find(v.str) != std::string::npos;
         if (c.kind == Kind::dict) return v.kind == Kind::string && c.dict->find(v.str) != nullptr;
         for (const Value& item : iterate(c))
           if (equal(item, v)) return true;
         return false;
       }},
      {"even", [](const Value& v, const CallArgs&) { return int_of(v, "even") % 2 == 0; }},
      {"odd", [](const Value& v, const CallArgs&) { return int_of(v, "odd") % 2 != 0; }},
      {"divisibleby", [](const Value& v, const CallArgs& a) {
         const int64_t d = int_of(arg(a, "divisibleby"), "divisibleby");
         LD_CHECK(d != 0, "divisibleby 0");
         return int_of(v, "divisibleby") % d == 0;
       }},
      {"lower", [](const Value& v, const CallArgs&) {
         return v.kind == Kind::string && has_case_letters(v.str) && to_lower(v.str) == v.str;
       }},
      {"upper", [](const Value& v, const CallArgs&) {
         return v.kind == Kind::string && has_case_letters(v.str) && to_upper(v.str) == v.str;
       }},
  };
  return kTests;
}

const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> kAliases = {
      {"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"}, {"lessthan", "lt"}, {"<", "lt"}, {"<=", "le"},
      {"greaterthan", "gt"}, {">", "gt"}, {">=", "ge"}};
  return kAliases;
}

}  // namespace

bool is_test(const std::string& name) { return aliases().count(name) || tests().count(name); }

bool apply_test(const std::string& name, const Value& value, const CallArgs& args) {
  auto alias = aliases().find(name);
  const std::string& real = alias == aliases().end() ? name : alias->second;
  auto it = tests().find(real);
  LD_CHECK(it != tests().end(), "no test named '", name, "'");
  return it->second(value, args);
}

}  // namespace ld::tune::jinja
