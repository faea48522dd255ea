#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

// Sizes of the dims before and after `dim`.
std::pair<int64_t, int64_t> outer_inner(const Shape& s, int64_t dim) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s[size_t(d)];
  for (size_t d = size_t(dim) + 1; d < s.size(); ++d) inner *= s[d];
  return {outer, inner};
}

Ref ref_concat(const std::vector<Ref>& xs, int64_t dim) {
  Shape s = xs[0].shape;
  s[size_t(dim)] = 0;
  for (const Ref& x : xs) s[size_t(dim)] += x.shape[size_t(dim)];
  Ref r(s);
  auto [outer, inner] = outer_inner(s, dim);
  int64_t total = s[size_t(dim)], start = 0;
  for (const Ref& x : xs) {
    int64_t len = x.shape[size_t(dim)];
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < len; ++i)
        for (int64_t k = 0; k < inner; ++k)
          r.v[size_t((o * total + start + i) * inner + k)] = x.v[size_t((o * len + i) * inner + k)];
    start += len;
  }
  return r;
}

Ref ref_narrow(const Ref& x, int64_t dim, int64_t start, int64_t len) {
  Shape s = x.shape;
  s[size_t(dim)] = len;
  Ref r(s);
  auto [outer, inner] = outer_inner(s, dim);
  int64_t total = x.shape[size_t(dim)];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t k = 0; k < inner; ++k)
        r.v[size_t((o * len + i) * inner + k)] = x.v[size_t((o * total + start + i) * inner + k)];
  return r;
}

Ref ref_unsqueeze(Ref x, int64_t dim) {
  x.shape.insert(x.shape.begin() + dim, 1);
  return x;
}

int64_t wrap(int64_t dim, int64_t ndim) { return dim < 0 ? dim + ndim : dim; }

OpCase concat_case(const std::string& variant, std::vector<InputSpec> inputs, int64_t dim) {
  OpCase c;
  c.op = "concat";
  c.variant = variant;
  c.inputs = std::move(inputs);
  c.run = [dim](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::concat(t, dim)}; };
  c.reference = [dim](const std::vector<Ref>& t) { return std::vector<Ref>{ref_concat(t, wrap(dim, t[0].dim()))}; };
  return c;
}

OpCase split_case(const std::string& variant, InputSpec x, std::vector<int64_t> sizes, int64_t dim) {
  OpCase c;
  c.op = "split";
  c.variant = variant;
  c.inputs = {std::move(x)};
  c.run = [=](const std::vector<Tensor>& t) { return ops::split(t[0], sizes, dim); };
  c.reference = [=](const std::vector<Ref>& t) {
    int64_t d = wrap(dim, t[0].dim()), start = 0;
    std::vector<Ref> out;
    for (int64_t s : sizes) out.push_back(ref_narrow(t[0], d, start, s)), start += s;
    return out;
  };
  return c;
}

OpCase stack_case(const std::string& variant, std::vector<InputSpec> inputs, int64_t dim) {
  OpCase c;
  c.op = "stack";
  c.variant = variant;
  c.inputs = std::move(inputs);
  c.run = [dim](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::stack(t, dim)}; };
  c.reference = [dim](const std::vector<Ref>& t) {
    int64_t d = wrap(dim, t[0].dim() + 1);
    std::vector<Ref> expanded;
    for (const Ref& x : t) expanded.push_back(ref_unsqueeze(x, d));
    return std::vector<Ref>{ref_concat(expanded, d)};
  };
  return c;
}

constexpr uint64_t kRandomSeed = 808;

// concat: 1-3 inputs of rank 1-4 that differ only along dim, no grad for one sometimes. split: 1-3
// pieces cut at random points (empty pieces included). stack: 1-3 inputs of rank 0-3 and a new dim
// anywhere. Every input in a drawn layout; dims written negative half the time.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "concat", 4, [](Rng& rng) {
    Shape base = draw_small_shape(rng, int(draw_int(rng, 1, 4)), 400);
    int64_t dim = draw_dim(rng, int64_t(base.size()));
    std::vector<InputSpec> inputs;
    for (int64_t i = draw_int(rng, 1, 3); i > 0; --i) {
      Shape s = base;
      s[size_t(wrap(dim, int64_t(s.size())))] = draw_int(rng, 1, 9);
      inputs.push_back(in_random(rng, s));
    }
    if (inputs.size() > 1 && draw_bool(rng, 0.25)) inputs[0] = no_grad(inputs[0]);
    return concat_case("dim " + std::to_string(dim), inputs, dim);
  });
  add_random_cases(cases, kRandomSeed, "split", 4, [](Rng& rng) {
    InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
    int64_t dim = draw_dim(rng, int64_t(x.shape.size())), n = x.shape[size_t(wrap(dim, int64_t(x.shape.size())))];
    std::vector<int64_t> cuts = {0, n};
    for (int64_t i = draw_int(rng, 0, 2); i > 0; --i) cuts.push_back(draw_int(rng, 0, n));
    std::sort(cuts.begin(), cuts.end());
    std::vector<int64_t> sizes;
    for (size_t i = 1; i < cuts.size(); ++i) sizes.push_back(cuts[i] - cuts[i - 1]);
    return split_case("sizes " + shape_str(sizes) + ", dim " + std::to_string(dim), x, sizes, dim);
  });
  add_random_cases(cases, kRandomSeed, "stack", 4, [](Rng& rng) {
    Shape s = draw_small_shape(rng, int(draw_int(rng, 0, 3)), 400);
    std::vector<InputSpec> inputs;
    for (int64_t i = draw_int(rng, 1, 3); i > 0; --i) inputs.push_back(in_random(rng, s));
    int64_t dim = draw_dim(rng, int64_t(s.size()) + 1);
    return stack_case("dim " + std::to_string(dim), inputs, dim);
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(concat_case("middle dim, three inputs, views",
                              {in({2, 3, 4}, Layout::transposed), in({2, 1, 4}), in({2, 5, 4}, Layout::sliced)}, 1));
  cases.push_back(concat_case("dim 0, odd sizes", {in({3, 5}), in({1, 5}, Layout::transposed)}, 0));
  cases.push_back(concat_case("last dim as -1, one input needs no grad",
                              {in({4, 2}), no_grad(in({4, 3})), in({4, 1})}, -1));
  cases.push_back(concat_case("a single input", {in({3, 2}, Layout::transposed)}, 0));

  cases.push_back(split_case("dim 0, three pieces", in({7, 5}), {2, 4, 1}, 0));
  cases.push_back(split_case("last dim, transposed input", in({3, 8}, Layout::transposed), {3, 5}, -1));
  cases.push_back(split_case("middle dim, an empty piece", in({2, 6, 3}, Layout::sliced), {1, 0, 5}, 1));

  cases.push_back(stack_case("new leading dim", {in({2, 3}), in({2, 3}, Layout::transposed), in({2, 3})}, 0));
  cases.push_back(stack_case("new middle dim", {in({4, 1, 3}, Layout::sliced), in({4, 1, 3})}, 1));
  cases.push_back(stack_case("new last dim as -1", {in({5}), in({5})}, -1));
  add_random_shape_cases(cases);
  return cases;
}

TEST(Join, SplitGradientReachesOnlyUsedPieces) {
  Tensor x = arange(12, DType::f32).reshape({3, 4}).detach().set_requires_grad(true);
  std::vector<Tensor> parts = ops::split(x, {1, 3}, 1);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].storage(), x.storage());  // views, not copies
  ops::sum(parts[1]).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1}));
}

TEST(Join, ConcatKeepsIntegerDtypes) {
  Tensor a = from_vector<int64_t>({1, 2}, {2}), b = from_vector<int64_t>({3}, {1});
  Tensor c = ops::concat({a, b}, 0);
  EXPECT_EQ(c.dtype(), DType::i64);
  EXPECT_EQ(c.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Join, ConcatShapeMismatchNamesBothShapesAndTheDim) {
  try {
    ops::concat({zeros({2, 3}), zeros({2, 3}), zeros({3, 4})}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("concat: tensor 2 has shape [3, 4] but tensor 0 has shape [2, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("except dim 1"), std::string::npos) << msg;
  }
  EXPECT_THROW(ops::concat({zeros({2, 3}), zeros({2, 3, 1})}, 0), Error);                   // rank
  EXPECT_THROW(ops::concat({zeros({2, 3}), zeros({2, 3}, DType::i32)}, 0), Error);           // dtype
  EXPECT_THROW(ops::concat({}, 0), Error);                                                   // nothing
  EXPECT_THROW(ops::stack({zeros({2, 3}), zeros({3, 2})}, 0), Error);                        // stack shapes
}

TEST(Join, SplitSizesMustSumToTheDim) {
  try {
    ops::split(zeros({4, 6}), {2, 3}, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("split: sizes [2, 3] sum to 5"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has size 6"), std::string::npos) << msg;
  }
  EXPECT_THROW(ops::split(zeros({4, 6}), {7, -1}, 1), Error);
}

}  // namespace
}  // namespace ld::test
