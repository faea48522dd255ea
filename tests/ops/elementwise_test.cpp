#include <algorithm>
#include <cmath>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

using Fn2 = std::function<double(double, double)>;

OpCase binary_case(const char* op, Tensor (*f)(const Tensor&, const Tensor&), Fn2 ref, InputSpec a, InputSpec b,
                   const char* variant) {
  OpCase c;
  c.op = op;
  c.variant = variant;
  c.inputs = {a, b};
  c.run = [f](const std::vector<Tensor>& x) { return std::vector<Tensor>{f(x[0], x[1])}; };
  c.reference = [ref](const std::vector<Ref>& x) { return std::vector<Ref>{ref_broadcast(x[0], x[1], ref)}; };
  return c;
}

OpCase unary_case(const char* op, std::function<Tensor(const Tensor&)> f, std::function<double(double)> ref,
                  InputSpec x) {
  OpCase c;
  c.op = op;
  c.inputs = {x};
  c.run = [f](const std::vector<Tensor>& t) { return std::vector<Tensor>{f(t[0])}; };
  c.reference = [ref](const std::vector<Ref>& t) { return std::vector<Ref>{ref_map(t[0], ref)}; };
  return c;
}

double gelu_tanh_ref(double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }
double sigmoid_ref(double x) { return 1 / (1 + std::exp(-x)); }

constexpr uint64_t kRandomSeed = 101;

// Unary ops get a shape of rank 1-4; binary ops a broadcasting pair: each side is the full shape or
// a broadcast_partner of it (size-1 dims, dropped leading dims), in either order.
OpCase with_random_shapes(const OpCase& base, Rng& rng) {
  OpCase c = base;
  c.variant.clear();
  Shape full = draw_small_shape(rng, int(draw_int(rng, 1, 4)));
  if (c.inputs.size() == 1) {
    c.inputs[0] = reshaped(rng, base.inputs[0], full);
    return c;
  }
  Shape a = draw_bool(rng) ? full : broadcast_partner(rng, full), b = broadcast_partner(rng, full);
  if (draw_bool(rng)) std::swap(a, b);
  c.inputs[0] = reshaped(rng, base.inputs[0], a);
  c.inputs[1] = reshaped(rng, base.inputs[1], b);
  return c;
}

// Random shapes for every op of the hand-picked cases, reusing its first case's run and reference.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  std::vector<OpCase> firsts;
  for (const OpCase& c : cases)
    if (std::none_of(firsts.begin(), firsts.end(), [&](const OpCase& f) { return f.op == c.op; })) firsts.push_back(c);
  for (const OpCase& base : firsts)
    add_random_cases(cases, kRandomSeed, base.op, base.inputs.size() == 2 ? 4 : 3,
                     [&](Rng& rng) { return with_random_shapes(base, rng); });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  Fn2 add = [](double a, double b) { return a + b; };
  Fn2 sub = [](double a, double b) { return a - b; };
  Fn2 mul = [](double a, double b) { return a * b; };
  Fn2 div = [](double a, double b) { return a / b; };
  cases.push_back(binary_case("add", ops::add, add, in({3, 5}), in({3, 5}), "same shape"));
  cases.push_back(binary_case("add", ops::add, add, in({2, 3, 7}), in({7}), "row broadcast"));
  cases.push_back(binary_case("add", ops::add, add, in({4, 1, 3}), in({1, 5, 1}), "both broadcast, size-1 dims"));
  cases.push_back(binary_case("add", ops::add, add, in({5, 3}, Layout::transposed), in({5, 3}, Layout::sliced), "views"));
  cases.push_back(binary_case("sub", ops::sub, sub, in({3, 1}), in({3, 4}, Layout::transposed), "broadcast column, view"));
  cases.push_back(binary_case("mul", ops::mul, mul, in({2, 3, 5}), in({3, 1}), "broadcast middle"));
  cases.push_back(binary_case("mul", ops::mul, mul, in({6, 5}, Layout::transposed), in({}), "scalar"));
  cases.push_back(binary_case("div", ops::div, div, in({3, 4}), positive({4}), "row broadcast"));
  cases.push_back(binary_case("div", ops::div, div, in({1, 7}), positive({5, 1}), "outer"));

  cases.push_back(unary_case("scale", [](const Tensor& x) { return ops::scale(x, -2.5); }, [](double x) { return -2.5 * x; }, in({3, 5}, Layout::transposed)));
  cases.push_back(unary_case("add_scalar", [](const Tensor& x) { return ops::add_scalar(x, 0.75); }, [](double x) { return x + 0.75; }, in({7})));
  cases.push_back(unary_case("neg", ops::neg, [](double x) { return -x; }, in({2, 3})));
  cases.push_back(unary_case("exp", ops::exp, [](double x) { return std::exp(x); }, in({4, 3}, Layout::sliced)));
  cases.push_back(unary_case("log", ops::log, [](double x) { return std::log(x); }, positive({9})));
  cases.push_back(unary_case("sqrt", ops::sqrt, [](double x) { return std::sqrt(x); }, positive({3, 3})));
  cases.push_back(unary_case("tanh", ops::tanh, [](double x) { return std::tanh(x); }, in({5, 2}, Layout::transposed)));
  cases.push_back(unary_case("sigmoid", ops::sigmoid, sigmoid_ref, in({11})));
  cases.push_back(unary_case("relu", ops::relu, [](double x) { return x > 0 ? x : 0; }, in({13})));
  cases.push_back(unary_case("gelu_tanh", [](const Tensor& x) { return ops::gelu(x, true); }, gelu_tanh_ref, in({4, 7}, Layout::transposed)));
  cases.push_back(unary_case("gelu_erf", [](const Tensor& x) { return ops::gelu(x, false); }, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, in({17})));
  cases.push_back(unary_case("silu", ops::silu, [](double x) { return x * sigmoid_ref(x); }, in({3, 1, 5})));
  add_random_shape_cases(cases);
  return cases;
}

}  // namespace
}  // namespace ld::test
