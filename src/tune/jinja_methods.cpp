// The Python methods of str, dict and list that chat templates call, bound to their object.
// Known Python methods that are not implemented (or that mutate, which the sandbox forbids) are
// an error when called, never a silent no-op.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"
#include "tune/jinja_strings.hpp"

namespace ld::tune::jinja {

namespace {

using Method = Value (*)(const Value& self, const CallArgs& args);

const Value* optional_arg(const CallArgs& args, size_t i, const char* name) {
  const Value* v = args.get(i, name);
  return v && v->kind != Kind::none ? v : nullptr;
}

std::string string_arg(const CallArgs& args, size_t i, const char* name, const char* method) {
  const Value* v = args.get(i, name);
  LD_CHECK(v && v->kind == Kind::string, method, "() argument '", name, "' must be a string");
  return v->str;
}

Value strip_method(const Value& self, const CallArgs& args, bool left, bool right) {
  const Value* chars = optional_arg(args, 0, "chars");
  return Value::from_string(strip_chars(self.str, chars ? chars->str : std::string(), chars != nullptr, left, right));
}

Value str_split(const Value& self, const CallArgs& args) {
  const Value* sep = optional_arg(args, 0, "sep");
  const Value* maxsplit = args.get(1, "maxsplit");
  const int64_t limit = maxsplit && maxsplit->kind == Kind::integer ? maxsplit->integer : -1;
  std::vector<Value> parts;
  for (std::string& p : split_string(self.str, sep ? std::optional<std::string>(sep->str) : std::nullopt, limit))
    parts.push_back(Value::from_string(std::move(p)));
  return Value::from_list(std::move(parts));
}

// startswith/endswith accept one prefix or a tuple of prefixes.
Value affix_test(const Value& self, const CallArgs& args, bool at_start) {
  const Value* affix = args.get(0, at_start ? "prefix" : "suffix");
  LD_CHECK(affix && (affix->kind == Kind::string || affix->kind == Kind::list),
           at_start ? "startswith" : "endswith", "() argument must be str or a tuple of str");
  std::vector<Value> options = affix->kind == Kind::string ? std::vector<Value>{*affix} : affix->list->items;
  for (const Value& o : options) {
    LD_CHECK(o.kind == Kind::string, "startswith/endswith: tuple items must be strings");
    const std::string& s = self.str;
    if (o.str.size() > s.size()) continue;
    if (at_start ? s.compare(0, o.str.size(), o.str) == 0 : s.compare(s.size() - o.str.size(), o.str.size(), o.str) == 0)
      return Value::from_bool(true);
  }
  return Value::from_bool(false);
}

Value str_replace(const Value& self, const CallArgs& args) {
  const Value* count = args.get(2, "count");
  const int64_t limit = count && count->kind == Kind::integer ? count->integer : -1;
  return Value::from_string(
      replace_all(self.str, string_arg(args, 0, "old", "replace"), string_arg(args, 1, "new", "replace"), limit));
}

Value str_find(const Value& self, const CallArgs& args) {
  const size_t at = self.str.find(string_arg(args, 0, "sub", "find"));
  if (at == std::string::npos) return Value::from_int(-1);
  return Value::from_int(static_cast<int64_t>(to_code_points(self.str.substr(0, at)).size()));
}

Value str_count(const Value& self, const CallArgs& args) {
  const std::string sub = string_arg(args, 0, "sub", "count");
  if (sub.empty()) return Value::from_int(length(self) + 1);
  int64_t n = 0;
  for (size_t at = self.str.find(sub); at != std::string::npos; at = self.str.find(sub, at + sub.size())) ++n;
  return Value::from_int(n);
}

Value str_join(const Value& self, const CallArgs& args) {
  const Value* items = args.get(0, "iterable");
  LD_CHECK(items, "join() takes exactly one argument");
  std::string out;
  bool first = true;
  for (const Value& v : iterate(*items)) {
    LD_CHECK(v.kind == Kind::string, "sequence item: expected str instance, ", type_name(v), " found");
    out += (first ? "" : self.str) + v.str;
    first = false;
  }
  return Value::from_string(out);
}

Value str_splitlines(const Value& self, const CallArgs&) {
  std::vector<Value> lines;
  for (std::string& line : split_lines(self.str)) lines.push_back(Value::from_string(std::move(line)));
  return Value::from_list(std::move(lines));
}

Value dict_items(const Value& self, const CallArgs&) {
  std::vector<Value> items;
  for (const auto& [k, v] : self.dict->items) items.push_back(Value::from_list({Value::from_string(k), v}, true));
  return Value::dict_view(std::move(items), "dict_items");
}

Value dict_keys(const Value& self, const CallArgs&) { return Value::dict_view(iterate(self), "dict_keys"); }

Value dict_values(const Value& self, const CallArgs&) {
  std::vector<Value> items;
  for (const auto& item : self.dict->items) items.push_back(item.second);
  return Value::dict_view(std::move(items), "dict_values");
}

Value dict_get(const Value& self, const CallArgs& args) {
  const Value* key = args.get(0, "key");
  LD_CHECK(key, "get() expected at least 1 argument");
  const Value* found = key->kind == Kind::string ? self.dict->find(key->str) : nullptr;
  if (found) return *found;
  const Value* fallback = args.get(1, "default");
  return fallback ? *fallback : Value::none();
}

const std::map<std::string, Method>& string_methods() {
  static const std::map<std::string, Method> kMethods = {
      {"strip", [](const Value& s, const CallArgs& a) { return strip_method(s, a, true, true); }},
      {"lstrip", [](const Value& s, const CallArgs& a) { return strip_method(s, a, true, false); }},
      {"rstrip", [](const Value& s, const CallArgs& a) { return strip_method(s, a, false, true); }},
      {"split", str_split},
      {"startswith", [](const Value& s, const CallArgs& a) { return affix_test(s, a, true); }},
      {"endswith", [](const Value& s, const CallArgs& a) { return affix_test(s, a, false); }},
      {"replace", str_replace},
      {"upper", [](const Value& s, const CallArgs&) { return Value::from_string(to_upper(s.str)); }},
      {"lower", [](const Value& s, const CallArgs&) { return Value::from_string(to_lower(s.str)); }},
      {"title", [](const Value& s, const CallArgs&) { return Value::from_string(to_title(s.str)); }},
      {"capitalize", [](const Value& s, const CallArgs&) { return Value::from_string(capitalize(s.str)); }},
      {"find", str_find},
      {"count", str_count},
      {"join", str_join},
      {"splitlines", str_splitlines},
  };
  return kMethods;
}

const std::map<std::string, Method>& dict_methods() {
  static const std::map<std::string, Method> kMethods = {
      {"items", dict_items}, {"keys", dict_keys}, {"values", dict_values}, {"get", dict_get}};
  return kMethods;
}

// Python methods we do not implement: calling one is an error naming it.
bool is_other_python_method(Kind kind, const std::string& name) {
  static const std::set<std::string> kStr = {"format", "index", "rindex", "rfind", "partition", "rpartition",
                                             "rsplit", "zfill", "center", "ljust", "rjust", "casefold", "swapcase",
                                             "isdigit", "isalpha", "isspace", "isupper", "islower", "encode",
                                             "expandtabs", "removeprefix", "removesuffix", "format_map", "translate"};
  static const std::set<std::string> kDict = {"pop", "update", "setdefault", "clear", "copy", "popitem", "fromkeys"};
  static const std::set<std::string> kList = {"append", "extend", "insert", "pop", "remove", "clear", "sort",
                                              "reverse", "index", "count", "copy"};
  if (kind == Kind::string) return kStr.count(name) > 0;
  if (kind == Kind::dict) return kDict.count(name) > 0;
  return kind == Kind::list && kList.count(name) > 0;
}

Value bind(const Value& self, const std::string& name, Method method) {
  return Value::from_function(name, [self, method](const CallArgs& args) { return method(self, args); });
}

}  // namespace

std::optional<Value> bound_method(const Value& obj, const std::string& name) {
  const std::map<std::string, Method>* methods =
      obj.kind == Kind::string ? &string_methods() : obj.kind == Kind::dict ? &dict_methods() : nullptr;
  if (methods) {
    if (auto it = methods->find(name); it != methods->end()) return bind(obj, name, it->second);
  }
  if (!is_other_python_method(obj.kind, name)) return std::nullopt;
  const std::string what = type_name(obj) + "." + name + "()";
  return Value::from_function(what, [what](const CallArgs&) -> Value {
    LD_FAIL("the method ", what, " is not supported in templates");
  });
}

}  // namespace ld::tune::jinja
