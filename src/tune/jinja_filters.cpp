// Jinja's built-in filters that chat templates use, plus transformers' tojson (json.dumps with
// ensure_ascii=False). Each filter takes the value and the call's arguments.
#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"
#include "tune/jinja_strings.hpp"

namespace ld::tune::jinja {

namespace {

using Filter = Value (*)(const Value& v, const CallArgs& args);

const Value* opt(const CallArgs& args, size_t i, const char* name) { return args.get(i, name); }

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value tojson(const Value& v, const CallArgs& args) {
  const Value* ensure_ascii = args.get(1, "ensure_ascii");
  LD_CHECK(!ensure_ascii || !truthy(*ensure_ascii), "tojson: ensure_ascii=True is not supported");
  JsonStyle style;
  if (const Value* indent = opt(args, 0, "indent"); indent && indent->kind != Kind::none) {
    LD_CHECK(indent->kind == Kind::integer, "tojson: indent must be an integer");
    style.indent = static_cast<int>(indent->integer);
    style.item_separator = ",";
  }
  if (const Value* separators = opt(args, 2, "separators"); separators && separators->kind != Kind::none) {
    const std::vector<Value> parts = iterate(*separators);
    LD_CHECK(parts.size() == 2 && parts[0].kind == Kind::string && parts[1].kind == Kind::string,
             "tojson: separators must be (item_separator, key_separator)");
    style.item_separator = parts[0].str;
    style.key_separator = parts[1].str;
  }
  const Value* sort_keys = args.get(3, "sort_keys");
  style.sort_keys = sort_keys && truthy(*sort_keys);
  return Value::from_string(to_json(v, style));
}

Value default_filter(const Value& v, const CallArgs& args) {
  const Value* fallback = opt(args, 0, "default_value");
  const Value* boolean = opt(args, 1, "boolean");
  const bool use_fallback = v.is_undefined() || (boolean && truthy(*boolean) && !truthy(v));
  if (!use_fallback) return v;
  return fallback ? *fallback : Value::from_string("");
}

Value first(const Value& v, const CallArgs&) {
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value last(const Value& v, const CallArgs&) {
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

// The item's attribute at a dotted path ("a.b" or "0"), as Jinja's make_attrgetter.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    v = subscript(v, numeric ? Value::from_int(std::stoll(part)) : Value::from_string(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

std::string attribute_name(const CallArgs& args, size_t i, const char* filter) {
  const Value* a = args.get(i, "attribute");
  LD_CHECK(a && (a->kind == Kind::string || a->kind == Kind::integer), filter, ": the attribute must be a string");
  return a->kind == Kind::string ? a->str : std::to_string(a->integer);
}

Value join(const Value& v, const CallArgs& args) {
  const Value* sep = opt(args, 0, "d");
  const Value* attr = args.get(1, "attribute");
  if (attr && attr->kind == Kind::none) attr = nullptr;
  std::string out;
  bool first_item = true;
  for (const Value& item : iterate(v)) {
    out += (first_item ? "" : (sep ? to_str(*sep) : "")) + to_str(attr ? attribute_path(item, to_str(*attr)) : item);
    first_item = false;
  }
  return Value::from_string(out);
}

Value items(const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value::from_list({});
  LD_CHECK(v.kind == Kind::dict, "items: can only get item pairs from a mapping, got ", type_name(v));
  std::vector<Value> pairs;
  for (const auto& [k, item] : v.dict->items) pairs.push_back(Value::from_list({Value::from_string(k), item}, true));
  return Value::from_list(std::move(pairs));
}

// select/reject/selectattr/rejectattr: keep the items whose (attribute) passes the test, or fails it.
Value select_items(const Value& v, const CallArgs& args, bool by_attribute, bool keep_passing) {
  const size_t first_test_arg = by_attribute ? 1 : 0;
  std::string attr;
  if (by_attribute) attr = attribute_name(args, 0, "selectattr");
  const Value* test = args.get(first_test_arg, "");
  CallArgs test_args;
  for (size_t i = first_test_arg + 1; i < args.positional.size(); ++i) test_args.positional.push_back(args.positional[i]);
  std::vector<Value> kept;
  for (const Value& item : iterate(v)) {
    const Value subject = by_attribute ? attribute_path(item, attr) : item;
    const bool passes = test ? apply_test(to_str(*test), subject, test_args) : truthy(subject);
    if (passes == keep_passing) kept.push_back(item);
  }
  return Value::from_list(std::move(kept));
}

Value map_items(const Value& v, const CallArgs& args) {
  std::vector<Value> out;
  if (args.get(99, "attribute")) {
    const std::string attr = attribute_name(args, 99, "map");
    const Value* fallback = args.get(99, "default");
    for (const Value& item : iterate(v)) {
      Value got = attribute_path(item, attr);
      out.push_back(got.is_undefined() && fallback ? *fallback : got);
    }
    return Value::from_list(std::move(out));
  }
  LD_CHECK(!args.positional.empty() && args.positional[0].kind == Kind::string,
           "map: give a filter name or attribute=...");
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : iterate(v)) out.push_back(apply_filter(args.positional[0].str, item, rest));
  return Value::from_list(std::move(out));
}

Value replace(const Value& v, const CallArgs& args) {
  const Value* from = args.get(0, "old");
  const Value* to = args.get(1, "new");
  const Value* count = opt(args, 2, "count");
  LD_CHECK(from && to, "replace: needs the old and the new string");
  return Value::from_string(replace_all(to_str(v), to_str(*from), to_str(*to),
                                        count && count->kind == Kind::integer ? count->integer : -1));
}

Value to_int(const Value& v, const CallArgs& args) {
  const Value* fallback = opt(args, 0, "default");
  const Value* base_arg = args.get(1, "base");
  const int base = base_arg && base_arg->kind == Kind::integer ? static_cast<int>(base_arg->integer) : 10;
  if (v.kind == Kind::integer) return v;
  if (v.kind == Kind::boolean) return Value::from_int(v.boolean);
  if (v.kind == Kind::real) return Value::from_int(static_cast<int64_t>(v.real));
  if (v.kind == Kind::string) {
    try {
      size_t used = 0;
      const std::string s = strip_chars(v.str, "", false, true, true);
      const int64_t i = std::stoll(s, &used, base);
      if (used == s.size()) return Value::from_int(i);
    } catch (const std::exception&) {
    }
  }
  return fallback ? *fallback : Value::from_int(0);
}

Value to_float(const Value& v, const CallArgs& args) {
  const Value* fallback = opt(args, 0, "default");
  if (v.is_number()) return Value::from_real(as_double(v));
  if (v.kind == Kind::string) {
    try {
      size_t used = 0;
      const std::string s = strip_chars(v.str, "", false, true, true);
      const double d = std::stod(s, &used);
      if (used == s.size()) return Value::from_real(d);
    } catch (const std::exception&) {
    }
  }
  return fallback ? *fallback : Value::from_real(0);
}

// Jinja's unique: the first of each value, strings compared case-insensitively by default.
Value unique(const Value& v, const CallArgs& args) {
  const Value* case_sensitive = args.get(0, "case_sensitive");
  const bool exact = case_sensitive && truthy(*case_sensitive);
  auto key = [&](const Value& item) {
    return item.kind == Kind::string && !exact ? Value::from_string(to_lower(item.str)) : item;
  };
  std::vector<Value> kept, seen;
  for (const Value& item : iterate(v)) {
    const Value k = key(item);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, k); })) continue;
    seen.push_back(k);
    kept.push_back(item);
  }
  return Value::from_list(std::move(kept));
}

// The sort key of sort/min/max/dictsort: the (attribute of the) item, strings lowercased unless
// case_sensitive, as Jinja's ignore_case.
Value sort_key(const Value& item, const Value* attribute, bool case_sensitive) {
  Value key = attribute && attribute->kind != Kind::none ? attribute_path(item, to_str(*attribute)) : item;
  return key.kind == Kind::string && !case_sensitive ? Value::from_string(to_lower(key.str)) : key;
}

std::vector<Value> sorted_items(std::vector<Value> items, const Value* attribute, bool case_sensitive, bool reverse) {
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    const int c = compare(sort_key(a, attribute, case_sensitive), sort_key(b, attribute, case_sensitive));
    return reverse ? c > 0 : c < 0;
  });
  return items;
}

bool flag(const CallArgs& args, size_t i, const char* name) {
  const Value* v = args.get(i, name);
  return v && truthy(*v);
}

Value sort(const Value& v, const CallArgs& args) {
  return Value::from_list(sorted_items(iterate(v), args.get(2, "attribute"), flag(args, 1, "case_sensitive"),
                                       flag(args, 0, "reverse")));
}

Value extreme(const Value& v, const CallArgs& args, bool largest) {
  const Value* attribute = args.get(1, "attribute");
  const bool cs = flag(args, 0, "case_sensitive");
  const std::vector<Value> items = sorted_items(iterate(v), attribute, cs, false);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  // Python's min/max return the first of equal extremes; stable sort keeps that one first for min.
  if (!largest) return items.front();
  size_t best = items.size() - 1;
  while (best > 0 && compare(sort_key(items[best - 1], attribute, cs), sort_key(items.back(), attribute, cs)) == 0) --best;
  return items[best];
}

Value sum(const Value& v, const CallArgs& args) {
  const Value* attribute = args.get(0, "attribute");
  const Value* start = args.get(1, "start");
  Value total = start ? *start : Value::from_int(0);
  const bool by_attribute = attribute && attribute->kind != Kind::none;
  for (const Value& item : iterate(v))
    total = arithmetic("+", total, by_attribute ? attribute_path(item, to_str(*attribute)) : item);
  return total;
}

Value dictsort(const Value& v, const CallArgs& args) {
  LD_CHECK(v.kind == Kind::dict, "dictsort: expected a dict, got ", type_name(v));
  const Value* by = args.get(1, "by");
  const bool by_value = by && to_str(*by) == "value";
  LD_CHECK(!by || by_value || to_str(*by) == "key", "dictsort: you can only sort by either 'key' or 'value'");
  std::vector<Value> pairs;
  for (const auto& [k, item] : v.dict->items) pairs.push_back(Value::from_list({Value::from_string(k), item}, true));
  const Value position = Value::from_string(by_value ? "1" : "0");
  return Value::from_list(sorted_items(pairs, &position, flag(args, 0, "case_sensitive"), flag(args, 2, "reverse")));
}

// Jinja's indent(width=4, first=False, blank=False): indents every line but the first.
Value indent(const Value& v, const CallArgs& args) {
  const Value* width = args.get(0, "width");
  std::string pad = "    ";
  if (width) pad = width->kind == Kind::string ? width->str : std::string(static_cast<size_t>(as_double(*width)), ' ');
  std::vector<std::string> lines = split_lines(to_str(v) + "\n");
  std::string out = lines.empty() ? "" : lines[0];
  for (size_t i = 1; i < lines.size(); ++i)
    out += "\n" + (lines[i].empty() && !flag(args, 2, "blank") ? "" : pad) + lines[i];
  return Value::from_string(flag(args, 1, "first") ? pad + out : out);
}

Value reverse(const Value& v, const CallArgs&) {
  if (v.kind == Kind::string) return slice(v, Value::none(), Value::none(), Value::from_int(-1));
  std::vector<Value> items = iterate(v);
  return Value::from_list(std::vector<Value>(items.rbegin(), items.rend()));
}

const std::map<std::string, Filter>& filters() {
  static const std::map<std::string, Filter> kFilters = {
      {"length", [](const Value& v, const CallArgs&) { return Value::from_int(length(v)); }},
      {"tojson", tojson},
      {"trim", [](const Value& v, const CallArgs& a) {
         const Value* chars = opt(a, 0, "chars");
         const bool use = chars && chars->kind != Kind::none;
         return Value::from_string(strip_chars(to_str(v), use ? to_str(*chars) : "", use, true, true));
       }},
      {"upper", [](const Value& v, const CallArgs&) { return Value::from_string(to_upper(to_str(v))); }},
      {"lower", [](const Value& v, const CallArgs&) { return Value::from_string(to_lower(to_str(v))); }},
      {"title", [](const Value& v, const CallArgs&) { return Value::from_string(to_title(to_str(v))); }},
      {"capitalize", [](const Value& v, const CallArgs&) { return Value::from_string(capitalize(to_str(v))); }},
      {"default", default_filter},
      {"first", first},
      {"last", last},
      {"join", join},
      {"string", [](const Value& v, const CallArgs&) { return Value::from_string(to_str(v)); }},
      {"list", [](const Value& v, const CallArgs&) { return Value::from_list(iterate(v)); }},
      {"items", items},
      {"select", [](const Value& v, const CallArgs& a) { return select_items(v, a, false, true); }},
      {"reject", [](const Value& v, const CallArgs& a) { return select_items(v, a, false, false); }},
      {"selectattr", [](const Value& v, const CallArgs& a) { return select_items(v, a, true, true); }},
      {"rejectattr", [](const Value& v, const CallArgs& a) { return select_items(v, a, true, false); }},
      {"map", map_items},
      {"replace", replace},
      {"int", to_int},
      {"float", to_float},
      {"abs", [](const Value& v, const CallArgs&) {
         if (v.kind == Kind::real) return Value::from_real(std::fabs(v.real));
         return Value::from_int(std::llabs(static_cast<int64_t>(as_double(v))));
       }},
      {"reverse", reverse},
      {"unique", unique},
      {"sort", sort},
      {"min", [](const Value& v, const CallArgs& a) { return extreme(v, a, false); }},
      {"max", [](const Value& v, const CallArgs& a) { return extreme(v, a, true); }},
      {"sum", sum},
      {"dictsort", dictsort},
      {"indent", indent},
      {"safe", [](const Value& v, const CallArgs&) { return v; }},
  };
  return kFilters;
}

const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> kAliases = {{"count", "length"}, {"d", "default"}};
  return kAliases;
}

}  // namespace

bool is_filter(const std::string& name) { return aliases().count(name) || filters().count(name); }

Value apply_filter(const std::string& name, const Value& value, const CallArgs& args) {
  auto alias = aliases().find(name);
  const std::string& real = alias == aliases().end() ? name : alias->second;
  auto it = filters().find(real);
  LD_CHECK(it != filters().end(), "no filter named '", name, "'");
  return it->second(value, args);
}

}  // namespace ld::tune::jinja
