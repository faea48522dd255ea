#pragma once
// The values a Jinja template computes with, modelled on the Python objects Jinja would see:
// undefined, None, bool, int, float, str, list/tuple, dict (insertion-ordered), namespace and
// callables. Strings are UTF-8; lists, dicts and namespaces are shared by reference like Python's.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ld::tune::jinja {

struct Value;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // only changes how the list prints: (a, b) instead of [a, b]
  std::string view;    // "dict_keys", "dict_values" or "dict_items": prints as dict_keys([...])
};

struct DictData {
  std::vector<std::pair<std::string, Value>> items;  // insertion order, as in Python
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`, or nullptr when not given.
  const Value* get(size_t index, const std::string& name) const;
};

using Function = std::function<Value(const CallArgs&)>;

enum class Kind { undefined, none, boolean, integer, real, string, list, dict, ns, function };

struct Value {
  Kind kind = Kind::undefined;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string str;  // the string; for undefined, why it is undefined; for a function, its name
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;  // also the attributes of a namespace
  std::shared_ptr<const Function> function;

  static Value undefined(std::string why) { Value v; v.str = std::move(why); return v; }
  static Value none() { Value v; v.kind = Kind::none; return v; }
  static Value from_bool(bool b) { Value v; v.kind = Kind::boolean; v.boolean = b; return v; }
  static Value from_int(int64_t i) { Value v; v.kind = Kind::integer; v.integer = i; return v; }
  static Value from_real(double d) { Value v; v.kind = Kind::real; v.real = d; return v; }
  static Value from_string(std::string s) { Value v; v.kind = Kind::string; v.str = std::move(s); return v; }
  static Value from_list(std::vector<Value> items, bool tuple = false);
  static Value dict_view(std::vector<Value> items, std::string view);
  static Value new_dict();
  static Value new_namespace();
  static Value from_function(std::string name, Function f);
  static Value from_json(const nlohmann::json& j);
  static Value from_json(const nlohmann::ordered_json& j);  // keeps the objects' key order

  bool is_undefined() const { return kind == Kind::undefined; }
  bool is_number() const { return kind == Kind::boolean || kind == Kind::integer || kind == Kind::real; }
};

// The Python type name used in error messages ("str", "dict object", ...).
std::string type_name(const Value& v);
bool truthy(const Value& v);
// str(v) as Python prints it; undefined prints as "".
std::string to_str(const Value& v);
// repr(v) as Python prints it (strings quoted), used inside lists and dicts.
std::string to_repr(const Value& v);
// The options of json.dumps (always with ensure_ascii=False).
struct JsonStyle {
  int indent = -1;  // -1: None, everything on one line
  bool sort_keys = false;
  std::string item_separator = ", ";  // Python's default: "," when indent is given
  std::string key_separator = ": ";
};
std::string to_json(const Value& v, const JsonStyle& style);
// Python ==, and the sign of a - b for <, <= ... (an ld::Error when Python would raise TypeError).
bool equal(const Value& a, const Value& b);
int compare(const Value& a, const Value& b);
// The number as a double (bool and int included).
double as_double(const Value& v);
// The length by Python's len(): code points of a string, items of a list or dict.
int64_t length(const Value& v);
// The items Python's iter() yields: list items, dict keys, string code points; undefined is empty.
std::vector<Value> iterate(const Value& v);

// UTF-8 <-> code points, for indexing and slicing strings as Python does.
std::u32string to_code_points(const std::string& s);
std::string from_code_points(const std::u32string& s);

}  // namespace ld::tune::jinja
