// Arithmetic with Python's semantics: int stays int (bool counts as int), / is true division,
// // and % floor toward negative infinity, str and list concatenate and repeat.
#include <cmath>

#include "core/error.hpp"
#include "tune/jinja_builtins.hpp"

namespace ld::tune::jinja {

namespace {

// Python ints do not overflow; ours are 64-bit, so an overflow is an error rather than a wrong number.
template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b, const char* name) {
  int64_t result = 0;
  LD_CHECK(!op(a, b, &result), "integer overflow in ", name, " (beyond 64 bits)");
  return result;
}

bool add_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

bool is_int(const Value& v) { return v.kind == Kind::integer || v.kind == Kind::boolean; }
int64_t as_int(const Value& v) { return v.kind == Kind::integer ? v.integer : v.boolean; }

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  LD_FAIL("unsupported operand type(s) for ", op, ": '", type_name(a), "' and '", type_name(b), "'");
}

Value repeat(const Value& seq, int64_t times) {
  if (seq.kind == Kind::string) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.str;
    return Value::from_string(out);
  }
  std::vector<Value> items;
  for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq.list->items.begin(), seq.list->items.end());
  return Value::from_list(std::move(items), seq.list->tuple);
}

Value add(const Value& a, const Value& b) {
  if (is_int(a) && is_int(b)) return Value::from_int(checked(add_overflow, as_int(a), as_int(b), "+"));
  if (a.is_number() && b.is_number()) return Value::from_real(as_double(a) + as_double(b));
  if (a.kind == Kind::string && b.kind == Kind::string) return Value::from_string(a.str + b.str);
  if (a.kind == Kind::list && b.kind == Kind::list && a.list->tuple == b.list->tuple) {
    std::vector<Value> items = a.list->items;
    items.insert(items.end(), b.list->items.begin(), b.list->items.end());
    return Value::from_list(std::move(items), a.list->tuple);
  }
  unsupported("+", a, b);
}

Value multiply(const Value& a, const Value& b) {
  if (is_int(a) && is_int(b)) return Value::from_int(checked(mul_overflow, as_int(a), as_int(b), "*"));
  if (a.is_number() && b.is_number()) return Value::from_real(as_double(a) * as_double(b));
  if ((a.kind == Kind::string || a.kind == Kind::list) && is_int(b)) return repeat(a, as_int(b));
  if ((b.kind == Kind::string || b.kind == Kind::list) && is_int(a)) return repeat(b, as_int(a));
  unsupported("*", a, b);
}

Value divide(const std::string& op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) {
    if (op == "%" && a.kind == Kind::string) LD_FAIL("printf-style string formatting with % is not supported");
    unsupported(op, a, b);
  }
  LD_CHECK(as_double(b) != 0, op == "%" ? "integer modulo by zero" : "division by zero");
  if (op == "/") return Value::from_real(as_double(a) / as_double(b));
  if (is_int(a) && is_int(b)) {
    const int64_t x = as_int(a), y = as_int(b);
    int64_t q = x / y;
    if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
    return Value::from_int(op == "//" ? q : x - q * y);
  }
  const double x = as_double(a), y = as_double(b);
  const double q = std::floor(x / y);
  return Value::from_real(op == "//" ? q : x - q * y);
}

Value power(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported("**", a, b);
  if (is_int(a) && is_int(b) && as_int(b) >= 0) {
    LD_CHECK(as_int(b) < 64 || std::abs(as_int(a)) <= 1, "integer power too large: ", as_int(a), " ** ", as_int(b));
    int64_t r = 1;
    for (int64_t i = 0; i < as_int(b); ++i) r = checked(mul_overflow, r, as_int(a), "**");
    return Value::from_int(r);
  }
  return Value::from_real(std::pow(as_double(a), as_double(b)));
}

}  // namespace

void require_defined(const Value& v) {
  if (v.is_undefined()) LD_FAIL("UndefinedError: ", v.str);
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  require_defined(a);
  require_defined(b);
  if (op == "+") return add(a, b);
  if (op == "-") {
    if (is_int(a) && is_int(b)) return Value::from_int(checked(sub_overflow, as_int(a), as_int(b), "-"));
    if (a.is_number() && b.is_number()) return Value::from_real(as_double(a) - as_double(b));
    unsupported("-", a, b);
  }
  if (op == "*") return multiply(a, b);
  if (op == "**") return power(a, b);
  return divide(op, a, b);
}

}  // namespace ld::tune::jinja
