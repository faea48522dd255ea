#include "tune/jinja_globals.hpp"

#include <ctime>

#include "core/error.hpp"

namespace ld::tune::jinja {

namespace {

Value raise_exception(const CallArgs& args) {
  const Value* message = args.get(0, "message");
  LD_FAIL("raise_exception: ", message ? to_str(*message) : std::string());
}

Value strftime_now(const CallArgs& args) {
  const Value* format = args.get(0, "format");
  LD_CHECK(format && format->kind == Kind::string, "strftime_now(format): the format must be a string");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[256];
  const size_t n = std::strftime(buf, sizeof buf, format->str.c_str(), &local);
  return Value::from_string(std::string(buf, n));
}

// namespace(d, key=value, ...): a mutable object whose attributes {% set ns.key = ... %} can change
// from inside loops.
Value make_namespace(const CallArgs& args) {
  Value ns = Value::new_namespace();
  for (const Value& v : args.positional) {
    LD_CHECK(v.kind == Kind::dict, "namespace(): positional arguments must be dicts, got ", type_name(v));
    for (const auto& [k, item] : v.dict->items) ns.dict->set(k, item);
  }
  for (const auto& [k, v] : args.keyword) ns.dict->set(k, v);
  return ns;
}

int64_t int_arg(const Value& v) {
  LD_CHECK(v.kind == Kind::integer || v.kind == Kind::boolean, "range(): expected an integer, got ", type_name(v));
  return v.kind == Kind::integer ? v.integer : v.boolean;
}

Value range(const CallArgs& args) {
  const size_t n = args.positional.size();
  LD_CHECK(n >= 1 && n <= 3, "range() takes 1 to 3 arguments, got ", n);
  const int64_t start = n == 1 ? 0 : int_arg(args.positional[0]);
  const int64_t stop = int_arg(args.positional[n == 1 ? 0 : 1]);
  const int64_t step = n == 3 ? int_arg(args.positional[2]) : 1;
  LD_CHECK(step != 0, "range() arg 3 must not be zero");
  LD_CHECK((stop - start) / step < 100000, "range() is too large for a template (sandbox limit)");
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.push_back(Value::from_int(i));
  return Value::from_list(std::move(items));
}

Value make_dict(const CallArgs& args) {
  Value d = Value::new_dict();
  for (const Value& v : args.positional) {
    LD_CHECK(v.kind == Kind::dict, "dict(): positional arguments must be dicts, got ", type_name(v));
    for (const auto& [k, item] : v.dict->items) d.dict->set(k, item);
  }
  for (const auto& [k, v] : args.keyword) d.dict->set(k, v);
  return d;
}

}  // namespace

std::map<std::string, Value> global_functions() {
  return {{"raise_exception", Value::from_function("raise_exception", raise_exception)},
          {"strftime_now", Value::from_function("strftime_now", strftime_now)},
          {"namespace", Value::from_function("namespace", make_namespace)},
          {"range", Value::from_function("range", range)},
          {"dict", Value::from_function("dict", make_dict)}};
}

}  // namespace ld::tune::jinja
