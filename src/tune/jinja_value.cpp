#include "tune/jinja_value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace ld::tune::jinja {

const Value* DictData::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void DictData::set(const std::string& key, Value value) {
  for (auto& [k, v] : items)
    if (k == key) {
      v = std::move(value);
      return;
    }
  items.emplace_back(key, std::move(value));
}

const Value* CallArgs::get(size_t index, const std::string& name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

Value Value::from_list(std::vector<Value> items, bool tuple) {
  Value v;
  v.kind = Kind::list;
  v.list = std::make_shared<ListData>(ListData{std::move(items), tuple, {}});
  return v;
}

Value Value::dict_view(std::vector<Value> items, std::string view) {
  Value v = from_list(std::move(items));
  v.list->view = std::move(view);
  return v;
}

Value Value::new_dict() {
  Value v;
  v.kind = Kind::dict;
  v.dict = std::make_shared<DictData>();
  return v;
}

Value Value::new_namespace() {
  Value v = new_dict();
  v.kind = Kind::ns;
  return v;
}

Value Value::from_function(std::string name, Function f) {
  Value v;
  v.kind = Kind::function;
  v.str = std::move(name);
  v.function = std::make_shared<const Function>(std::move(f));
  return v;
}

namespace {

// Objects keep the key order of the JSON type: sorted for json, document order for ordered_json.
template <typename Json>
Value value_from_json(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return Value::none();
    case Json::value_t::boolean: return Value::from_bool(j.template get<bool>());
    case Json::value_t::number_integer: return Value::from_int(j.template get<int64_t>());
    case Json::value_t::number_unsigned: return Value::from_int(static_cast<int64_t>(j.template get<uint64_t>()));
    case Json::value_t::number_float: return Value::from_real(j.template get<double>());
    case Json::value_t::string: return Value::from_string(j.template get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      for (const auto& e : j) items.push_back(value_from_json(e));
      return Value::from_list(std::move(items));
    }
    case Json::value_t::object: {
      Value d = Value::new_dict();
      for (const auto& [k, e] : j.items()) d.dict->items.emplace_back(k, value_from_json(e));
      return d;
    }
    default: LD_FAIL("jinja: cannot use a JSON value of type ", j.type_name(), " in a template");
  }
}

}  // namespace

Value Value::from_json(const nlohmann::json& j) { return value_from_json(j); }

Value Value::from_json(const nlohmann::ordered_json& j) { return value_from_json(j); }

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::real: return "float";
    case Kind::string: return "str";
    case Kind::list: return v.list->tuple ? "tuple" : "list";
    case Kind::dict: return "dict";
    case Kind::ns: return "Namespace";
    case Kind::function: return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return v.boolean;
    case Kind::integer: return v.integer != 0;
    case Kind::real: return v.real != 0;
    case Kind::string: return !v.str.empty();
    case Kind::list: return !v.list->items.empty();
    case Kind::dict: return !v.dict->items.empty();
    default: return true;
  }
}

namespace {

// Python's repr(float): the shortest digits that round-trip, positional for exponents in [-4, 16).
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.2345e+03"
  const bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  const size_t e = sci.find('e');
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out;
  if (exponent >= -5 + 1 && exponent < 16) {
    if (exponent < 0) {
      out = "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
      out = digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
    }
  } else {
    out = digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_buf;
  }
  return negative ? "-" + out : out;
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const char quote = has_single && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + quote;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return float_repr(d);
}

std::string sequence_repr(const ListData& l) {
  std::string out = l.tuple ? "(" : "[";
  for (size_t i = 0; i < l.items.size(); ++i) out += (i ? ", " : "") + to_repr(l.items[i]);
  if (l.tuple && l.items.size() == 1) out += ",";
  out += l.tuple ? ")" : "]";
  return l.view.empty() ? out : l.view + "(" + out + ")";
}

std::string dict_repr(const DictData& d) {
  std::string out = "{";
  for (size_t i = 0; i < d.items.size(); ++i)
    out += (i ? ", " : "") + string_repr(d.items[i].first) + ": " + to_repr(d.items[i].second);
  return out + "}";
}

void json_dump(const Value& v, const JsonStyle& style, int depth, std::string& out);

void json_newline(const JsonStyle& style, int depth, std::string& out) {
  if (style.indent < 0) return;
  out += '\n';
  out.append(static_cast<size_t>(style.indent * depth), ' ');
}

void json_list(const ListData& l, const JsonStyle& style, int depth, std::string& out) {
  if (l.items.empty()) {
    out += "[]";
    return;
  }
  out += '[';
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (i) out += style.item_separator;
    json_newline(style, depth + 1, out);
    json_dump(l.items[i], style, depth + 1, out);
  }
  json_newline(style, depth, out);
  out += ']';
}

void json_dict(const DictData& d, const JsonStyle& style, int depth, std::string& out) {
  if (d.items.empty()) {
    out += "{}";
    return;
  }
  std::vector<const std::pair<std::string, Value>*> items;
  for (const auto& item : d.items) items.push_back(&item);
  if (style.sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
  out += '{';
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += style.item_separator;
    json_newline(style, depth + 1, out);
    out += json_string(items[i]->first) + style.key_separator;
    json_dump(items[i]->second, style, depth + 1, out);
  }
  json_newline(style, depth, out);
  out += '}';
}

void json_dump(const Value& v, const JsonStyle& style, int depth, std::string& out) {
  switch (v.kind) {
    case Kind::none: out += "null"; return;
    case Kind::boolean: out += v.boolean ? "true" : "false"; return;
    case Kind::integer: out += std::to_string(v.integer); return;
    case Kind::real: out += json_float(v.real); return;
    case Kind::string: out += json_string(v.str); return;
    case Kind::list: json_list(*v.list, style, depth, out); return;
    case Kind::dict: json_dict(*v.dict, style, depth, out); return;
    default: LD_FAIL("tojson: Object of type ", type_name(v), " is not JSON serializable");
  }
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "";
    case Kind::string: return v.str;
    default: return to_repr(v);
  }
}

std::string to_repr(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return "";
    case Kind::none: return "None";
    case Kind::boolean: return v.boolean ? "True" : "False";
    case Kind::integer: return std::to_string(v.integer);
    case Kind::real: return float_repr(v.real);
    case Kind::string: return string_repr(v.str);
    case Kind::list: return sequence_repr(*v.list);
    case Kind::dict: return dict_repr(*v.dict);
    case Kind::ns: return "<Namespace " + dict_repr(*v.dict) + ">";
    case Kind::function: return "<function " + v.str + ">";
  }
  return "";
}

std::string to_json(const Value& v, const JsonStyle& style) {
  std::string out;
  json_dump(v, style, 0, out);
  return out;
}

double as_double(const Value& v) {
  if (v.kind == Kind::boolean) return v.boolean ? 1 : 0;
  if (v.kind == Kind::integer) return static_cast<double>(v.integer);
  LD_CHECK(v.kind == Kind::real, "expected a number, got ", type_name(v));
  return v.real;
}

bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    auto exact = [](const Value& v) { return v.kind == Kind::boolean ? int64_t{v.boolean} : v.integer; };
    if (a.kind != Kind::real && b.kind != Kind::real) return exact(a) == exact(b);  // bool is an int in Python
    return as_double(a) == as_double(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::undefined:
    case Kind::none: return true;
    case Kind::string: return a.str == b.str;
    case Kind::list:
      return a.list->items.size() == b.list->items.size() &&
             std::equal(a.list->items.begin(), a.list->items.end(), b.list->items.begin(), equal);
    case Kind::dict:
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* other = b.dict->find(k);
        if (!other || !equal(v, *other)) return false;
      }
      return true;
    default: return a.dict == b.dict && a.function == b.function;
  }
}

int compare(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    const double x = as_double(a), y = as_double(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.kind == Kind::string && b.kind == Kind::string) return a.str < b.str ? -1 : (a.str > b.str ? 1 : 0);
  if (a.kind == Kind::list && b.kind == Kind::list) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (const int c = compare(x[i], y[i]); c != 0) return c;
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  LD_FAIL("'<' not supported between instances of '", type_name(a), "' and '", type_name(b), "'");
}

int64_t length(const Value& v) {
  switch (v.kind) {
    case Kind::undefined: return 0;
    case Kind::string: return static_cast<int64_t>(to_code_points(v.str).size());
    case Kind::list: return static_cast<int64_t>(v.list->items.size());
    case Kind::dict: return static_cast<int64_t>(v.dict->items.size());
    default: LD_FAIL("object of type '", type_name(v), "' has no len()");
  }
}

std::vector<Value> iterate(const Value& v) {
  std::vector<Value> out;
  switch (v.kind) {
    case Kind::undefined: return out;
    case Kind::list: return v.list->items;
    case Kind::dict:
      for (const auto& item : v.dict->items) out.push_back(Value::from_string(item.first));
      return out;
    case Kind::string:
      for (char32_t c : to_code_points(v.str)) out.push_back(Value::from_string(from_code_points(std::u32string(1, c))));
      return out;
    default: LD_FAIL("'", type_name(v), "' object is not iterable");
  }
}

std::u32string to_code_points(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
    char32_t cp = n == 1 ? c : (c & (0x7f >> n));
    for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    out += cp;
    i += n;
  }
  return out;
}

std::string from_code_points(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xe0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

}  // namespace ld::tune::jinja
