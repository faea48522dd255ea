#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

// Three-way NumPy broadcast built from two-way ones: broadcast cond against a (keeping both), then
// the result against b.
Ref ref_where(const Ref& cond, const Ref& a, const Ref& b) {
  // Pack (cond, a) into one value per broadcast element: cond ? a : NaN marks "take b".
  Ref picked = ref_broadcast(cond, a, [](double c, double x) { return c != 0 ? x : std::nan(""); });
  return ref_broadcast(picked, b, [](double x, double y) { return std::isnan(x) ? y : x; });
}

OpCase where_case(const std::string& variant, InputSpec cond, InputSpec a, InputSpec b) {
  OpCase c;
  c.op = "where";
  c.variant = variant;
  c.inputs = {std::move(cond), std::move(a), std::move(b)};
  c.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::where(t[0], t[1], t[2])}; };
  c.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{ref_where(t[0], t[1], t[2])}; };
  return c;
}

OpCase masked_fill_case(const std::string& variant, InputSpec x, InputSpec mask, double value) {
  OpCase c;
  c.op = "masked_fill";
  c.variant = variant;
  c.inputs = {std::move(x), std::move(mask)};
  c.run = [value](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::masked_fill(t[0], t[1], value)}; };
  c.reference = [value](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_broadcast(t[0], t[1], [value](double xv, double m) { return m != 0 ? value : xv; })};
  };
  return c;
}

double silu_ref(double x) { return x / (1 + std::exp(-x)); }

OpCase swiglu_case(const std::string& variant, InputSpec gate, InputSpec up) {
  OpCase c;
  c.op = "swiglu";
  c.variant = variant;
  c.inputs = {std::move(gate), std::move(up)};
  c.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::swiglu(t[0], t[1])}; };
  c.reference = [](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_broadcast(t[0], t[1], [](double g, double u) { return silu_ref(g) * u; })};
  };
  return c;
}

constexpr uint64_t kRandomSeed = 707;

Shape random_full_shape(Rng& rng) { return draw_small_shape(rng, int(draw_int(rng, 1, 4))); }

// where: cond, a and b each the full shape or a broadcast partner of it, in random order; b needs
// no grad sometimes. masked_fill: a partner of x as the mask. swiglu: equal shapes (it does not
// broadcast), each in its own layout.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "where", 4, [](Rng& rng) {
    Shape full = random_full_shape(rng);
    std::vector<Shape> s = {full, broadcast_partner(rng, full), broadcast_partner(rng, full)};
    std::shuffle(s.begin(), s.end(), rng);
    InputSpec b = in_random(rng, s[2]);
    if (draw_bool(rng, 0.25)) b = no_grad(b);
    return where_case("", mask_input(s[0], 0.5), in_random(rng, s[1]), b);
  });
  add_random_cases(cases, kRandomSeed, "masked_fill", 3, [](Rng& rng) {
    Shape full = random_full_shape(rng);
    double value = draw_one(rng, std::vector<double>{-1e4, 0.0, 2.5});
    return masked_fill_case("value " + num_str(value), in_random(rng, full),
                            mask_input(broadcast_partner(rng, full), 0.4), value);
  });
  add_random_cases(cases, kRandomSeed, "swiglu", 3, [](Rng& rng) {
    Shape full = random_full_shape(rng);
    return swiglu_case("", in_random(rng, full), in_random(rng, full));
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(where_case("same shapes, views", mask_input({4, 5}), in({4, 5}, Layout::transposed),
                             in({4, 5}, Layout::sliced)));
  cases.push_back(where_case("three-way broadcast, size-1 dims", mask_input({3, 1, 5}), in({1, 4, 5}), in({3, 4, 1})));
  cases.push_back(where_case("scalar a, row cond", mask_input({7}, 0.3), in({}), in({2, 7})));
  cases.push_back(where_case("b needs no grad", mask_input({2, 3}), in({2, 3}), no_grad(in({3}))));

  cases.push_back(masked_fill_case("row mask, transposed x", in({3, 4}, Layout::transposed), mask_input({4}), -1e4));
  cases.push_back(masked_fill_case("size-1 dims in mask", in({2, 3, 5}), mask_input({2, 1, 5}), 0.5));
  // (-inf fills are checked in a plain TEST: finite differences of an infinite sum are NaN.)
  cases.push_back(masked_fill_case("sliced x", in({6}, Layout::sliced), mask_input({6}, 0.4), 2.5));

  cases.push_back(swiglu_case("odd size", in({3, 7}), in({3, 7})));
  cases.push_back(swiglu_case("views", in({5, 4}, Layout::transposed), in({5, 4}, Layout::sliced)));
  cases.push_back(swiglu_case("size-1 dims", in({1, 9, 1}), in({1, 9, 1})));
  add_random_shape_cases(cases);
  return cases;
}

TEST(Select, ErrorsNameTheOpAndShapes) {
  Tensor a = zeros({2, 3});
  EXPECT_THROW(ops::where(zeros({2, 3}), a, a), Error);                           // f32 cond
  EXPECT_THROW(ops::where(zeros({2, 4}, DType::u8), a, a), Error);                // no broadcast
  EXPECT_THROW(ops::masked_fill(a, zeros({4, 2, 3}, DType::u8), 1.0), Error);     // mask larger than x
  try {
    ops::swiglu(zeros({2, 3}), zeros({3, 2}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("swiglu"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3, 2]"), std::string::npos) << msg;
  }
}

TEST(Select, MaskedFillWithMinusInfinityGivesZeroGradientThere) {
  Tensor x = from_vector<float>({1, 2, 3, 4}, {4}).set_requires_grad(true);
  Tensor mask = from_vector<uint8_t>({0, 1, 0, 1}, {4});
  Tensor y = ops::masked_fill(x, mask, -INFINITY);
  std::vector<float> v = y.to_vector();
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_TRUE(std::isinf(v[1]) && v[1] < 0);
  y.backward(from_vector<float>({1, 2, 3, 4}, {4}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{1, 0, 3, 0}));
}

}  // namespace
}  // namespace ld::test
