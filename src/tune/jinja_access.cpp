// Attribute, item and slice access with Jinja's rules: a missing key, an index out of range or
// an attribute that does not exist give undefined (which prints as ""), but reaching into an
// undefined value is an error.
#include <algorithm>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"

namespace ld::tune::jinja {

namespace {

std::string object_name(const Value& v) { return "'" + type_name(v) + " object'"; }

int64_t slice_index(const Value& v, const char* what) {
  LD_CHECK(v.kind == Kind::integer || v.kind == Kind::boolean || v.kind == Kind::none || v.is_undefined(),
           "slice ", what, " must be an integer or none, got ", type_name(v));
  return v.kind == Kind::integer ? v.integer : v.boolean;
}

// The indices Python's slice(start, stop, step).indices(n) visits.
std::vector<size_t> slice_positions(int64_t n, const Value& start, const Value& stop, const Value& step) {
  const bool has_step = step.kind != Kind::none && !step.is_undefined();
  const int64_t s = has_step ? slice_index(step, "step") : 1;
  LD_CHECK(s != 0, "slice step cannot be zero");
  auto clamp = [&](const Value& v, int64_t missing) {
    if (v.kind == Kind::none || v.is_undefined()) return missing;
    int64_t i = slice_index(v, "index");
    if (i < 0) i += n;
    return s > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t begin = clamp(start, s > 0 ? 0 : n - 1);
  const int64_t end = clamp(stop, s > 0 ? n : -1);
  std::vector<size_t> out;
  for (int64_t i = begin; s > 0 ? i < end : i > end; i += s) out.push_back(static_cast<size_t>(i));
  return out;
}

}  // namespace

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  require_defined(obj);
  if (obj.kind == Kind::string) {
    const std::u32string cps = to_code_points(obj.str);
    std::u32string out;
    for (size_t i : slice_positions(static_cast<int64_t>(cps.size()), start, stop, step)) out += cps[i];
    return Value::from_string(from_code_points(out));
  }
  LD_CHECK(obj.kind == Kind::list, "'", type_name(obj), "' object is not subscriptable");
  std::vector<Value> out;
  const auto& items = obj.list->items;
  for (size_t i : slice_positions(static_cast<int64_t>(items.size()), start, stop, step)) out.push_back(items[i]);
  return Value::from_list(std::move(out), obj.list->tuple);
}

Value subscript(const Value& obj, const Value& key) {
  require_defined(obj);
  if (obj.kind == Kind::dict || obj.kind == Kind::ns) {
    const Value* found = key.kind == Kind::string ? obj.dict->find(key.str) : nullptr;
    if (found) return *found;
    return Value::undefined(key.kind == Kind::string ? object_name(obj) + " has no attribute " + to_repr(key)
                                                     : type_name(obj) + " object has no element " + to_repr(key));
  }
  if (obj.kind == Kind::list || obj.kind == Kind::string) {
    if (key.kind != Kind::integer) {
      if (key.kind == Kind::string) return attribute(obj, key.str);
      return Value::undefined(type_name(obj) + " object has no element " + to_repr(key));
    }
    const std::u32string cps = obj.kind == Kind::string ? to_code_points(obj.str) : std::u32string();
    const auto n = static_cast<int64_t>(obj.kind == Kind::string ? cps.size() : obj.list->items.size());
    const int64_t i = key.integer < 0 ? key.integer + n : key.integer;
    if (i < 0 || i >= n) return Value::undefined(type_name(obj) + " object has no element " + to_repr(key));
    if (obj.kind == Kind::list) return obj.list->items[static_cast<size_t>(i)];
    return Value::from_string(from_code_points(std::u32string(1, cps[static_cast<size_t>(i)])));
  }
  return Value::undefined(type_name(obj) + " object has no element " + to_repr(key));
}

Value attribute(const Value& obj, const std::string& name) {
  require_defined(obj);
  if (std::optional<Value> method = bound_method(obj, name)) return *method;
  if (obj.kind == Kind::dict || obj.kind == Kind::ns) {
    const Value* found = obj.dict->find(name);
    return found ? *found : Value::undefined(object_name(obj) + " has no attribute '" + name + "'");
  }
  return Value::undefined(object_name(obj) + " has no attribute '" + name + "'");
}

}  // namespace ld::tune::jinja
