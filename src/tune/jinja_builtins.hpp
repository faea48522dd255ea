#pragma once
// Jinja's built-in filters and tests, the Python str/dict/list methods templates call, and the
// arithmetic operators with Python semantics. Everything unsupported is an ld::Error naming it.
#include <optional>
#include <string>

#include "tune/jinja_value.hpp"

namespace ld::tune::jinja {

// Whether a filter / test of that name exists (checked when parsing, as Jinja does).
bool is_filter(const std::string& name);
bool is_test(const std::string& name);
// value | name(args); throws "no filter named 'name'" for unknown filters.
Value apply_filter(const std::string& name, const Value& value, const CallArgs& args);
// value is name(args); throws "no test named 'name'" for unknown tests.
bool apply_test(const std::string& name, const Value& value, const CallArgs& args);
// obj.name when it is a method of a str, dict or list (a function bound to obj), else nothing.
std::optional<Value> bound_method(const Value& obj, const std::string& name);
// a op b for op in + - * / // % ** (Python semantics; undefined operands are an error).
Value arithmetic(const std::string& op, const Value& a, const Value& b);
// obj[start:stop:step] for a list or a string, null parts given as undefined.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// obj[key] as Jinja's getitem: out-of-range or missing keys give undefined.
Value subscript(const Value& obj, const Value& key);
// obj.name as Jinja's getattr: a method, else the item named `name`, else undefined.
Value attribute(const Value& obj, const std::string& name);

// Fails with Jinja's UndefinedError message when `v` is undefined.
void require_defined(const Value& v);

}  // namespace ld::tune::jinja
