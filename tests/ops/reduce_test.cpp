#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

// sum (or mean) of a Ref over dims
Ref ref_reduce(const Ref& x, std::vector<int64_t> dims, bool keepdim, bool mean) {
  for (auto& d : dims) d = d < 0 ? d + x.dim() : d;
  Shape kept = x.shape;
  int64_t count = 1;
  for (int64_t d : dims) count *= x.shape[size_t(d)], kept[size_t(d)] = 1;
  Ref r(kept);
  Shape idx(x.shape.size());
  for (int64_t flat = 0; flat < x.numel(); ++flat) {
    int64_t rem = flat;
    for (size_t d = x.shape.size(); d-- > 0;) idx[d] = rem % x.shape[d], rem /= x.shape[d];
    int64_t o = 0;
    for (size_t d = 0; d < kept.size(); ++d) o = o * kept[d] + (kept[d] == 1 ? 0 : idx[d]);
    r.v[size_t(o)] += x.v[size_t(flat)] / (mean ? double(count) : 1.0);
  }
  if (!keepdim) {
    Shape s;
    for (size_t d = 0; d < kept.size(); ++d)
      if (std::find(dims.begin(), dims.end(), int64_t(d)) == dims.end()) s.push_back(kept[d]);
    r.shape = s;
  }
  return r;
}

OpCase reduce_case(const char* op, std::vector<int64_t> dims, bool keepdim, InputSpec x) {
  bool is_mean = std::string(op) == "mean";
  OpCase c;
  c.op = op;
  c.inputs = {x};
  c.run = [=](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{is_mean ? ops::mean(t[0], dims, keepdim) : ops::sum(t[0], dims, keepdim)};
  };
  c.reference = [=](const std::vector<Ref>& t) { return std::vector<Ref>{ref_reduce(t[0], dims, keepdim, is_mean)}; };
  return c;
}

// x viewed as [outer, n, inner] around dim d.
struct AroundDim {
  int64_t outer = 1, n = 1, inner = 1;
};
AroundDim around_dim(const Shape& s, int64_t d) {
  AroundDim a;
  for (int64_t i = 0; i < int64_t(s.size()); ++i) {
    if (i < d) a.outer *= s[size_t(i)];
    if (i == d) a.n = s[size_t(i)];
    if (i > d) a.inner *= s[size_t(i)];
  }
  return a;
}

int64_t wrap(int64_t dim, int64_t rank) { return dim < 0 ? dim + rank : dim; }

Ref ref_argmax(const Ref& x, int64_t dim) {
  int64_t d = wrap(dim, x.dim());
  AroundDim a = around_dim(x.shape, d);
  Shape s = x.shape;
  s.erase(s.begin() + d);
  Ref r(s);
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t k = 0; k < a.inner; ++k) {
      auto at = [&](int64_t j) { return x.v[size_t((o * a.n + j) * a.inner + k)]; };
      int64_t best = 0;
      for (int64_t j = 1; j < a.n; ++j)
        if (at(j) > at(best)) best = j;
      r.v[size_t(o * a.inner + k)] = double(best);
    }
  return r;
}

OpCase argmax_case(InputSpec x, int64_t dim) {
  OpCase c;
  c.op = "argmax";
  c.variant = "dim " + std::to_string(dim);
  c.inputs = {std::move(x)};
  c.check_grad = false;
  c.run = [dim](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::argmax(t[0], dim)}; };
  c.reference = [dim](const std::vector<Ref>& t) { return std::vector<Ref>{ref_argmax(t[0], dim)}; };
  return c;
}

// The k largest along dim, largest first: values and indices.
std::vector<Ref> ref_topk(const Ref& x, int64_t k, int64_t dim) {
  int64_t d = wrap(dim, x.dim());
  AroundDim a = around_dim(x.shape, d);
  Shape s = x.shape;
  s[size_t(d)] = k;
  Ref vals(s), idx(s);
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t i = 0; i < a.inner; ++i) {
      auto at = [&](int64_t j) { return x.v[size_t((o * a.n + j) * a.inner + i)]; };
      std::vector<int64_t> order(static_cast<size_t>(a.n));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return at(p) > at(q); });
      for (int64_t j = 0; j < k; ++j) {
        size_t out = size_t((o * k + j) * a.inner + i);
        vals.v[out] = at(order[size_t(j)]), idx.v[out] = double(order[size_t(j)]);
      }
    }
  return {vals, idx};
}

OpCase topk_case(InputSpec x, int64_t k, int64_t dim, const std::string& variant) {
  OpCase c;
  c.op = "topk";
  c.variant = variant;
  c.inputs = {std::move(x)};
  c.run = [k, dim](const std::vector<Tensor>& t) {
    auto r = ops::topk(t[0], k, dim);
    return std::vector<Tensor>{r.values, r.indices};
  };
  c.reference = [k, dim](const std::vector<Ref>& t) { return ref_topk(t[0], k, dim); };
  return c;
}

constexpr uint64_t kRandomSeed = 202;

// A rank 1-4 input in a drawn layout; for sum and mean a non-empty set of dims in random order,
// some written negative.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  for (const char* op : {"sum", "mean"})
    add_random_cases(cases, kRandomSeed, op, 4, [op](Rng& rng) {
      InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
      int64_t rank = int64_t(x.shape.size());
      std::vector<int64_t> dims(static_cast<size_t>(rank));
      std::iota(dims.begin(), dims.end(), 0);
      std::shuffle(dims.begin(), dims.end(), rng);
      dims.resize(size_t(draw_int(rng, 1, rank)));
      for (auto& d : dims)
        if (draw_bool(rng)) d -= rank;
      bool keepdim = draw_bool(rng);
      OpCase c = reduce_case(op, dims, keepdim, x);
      c.variant = "dims " + shape_str(dims) + (keepdim ? ", keepdim" : "");
      return c;
    });
  add_random_cases(cases, kRandomSeed, "argmax", 3, [](Rng& rng) {
    InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
    return argmax_case(x, draw_dim(rng, int64_t(x.shape.size())));
  });
  add_random_cases(cases, kRandomSeed, "topk", 4, [](Rng& rng) {
    InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
    int64_t dim = draw_dim(rng, int64_t(x.shape.size()));
    int64_t k = draw_int(rng, 1, x.shape[size_t(wrap(dim, int64_t(x.shape.size())))]);
    return topk_case(x, k, dim, "k " + std::to_string(k) + ", dim " + std::to_string(dim));
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(reduce_case("sum", {-1}, false, in({3, 7})));
  cases.push_back(reduce_case("sum", {0, 2}, true, in({4, 3, 5}, Layout::transposed)));
  cases.push_back(reduce_case("sum", {1}, false, in({5, 1, 3}, Layout::sliced)));
  cases.push_back(reduce_case("sum", {0, 1, 2}, false, in({2, 3, 4})));
  cases.push_back(reduce_case("mean", {1}, true, in({2, 9, 3})));
  cases.push_back(reduce_case("mean", {0}, false, in({1000, 3})));

  cases.push_back(argmax_case(in({4, 6, 5}, Layout::transposed), 1));

  cases.push_back(topk_case(in({7, 5}), 3, -1, "last dim"));
  cases.push_back(topk_case(in({7, 5}), 3, 0, "dim 0"));
  add_random_shape_cases(cases);
  return cases;
}

// NaN ranks first, as in torch.topk, NaNs and equal values by lower index: a total order, which the
// CUDA backend follows too (tests/cuda compares the two on rows with NaNs).
TEST(Topk, NanRanksFirstAndTiesByLowerIndex) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = from_vector<float>({1.0f, nan, 3.0f, nan, 2.0f, 3.0f}, {1, 6});
  const auto r = ops::topk(x, 5, -1);
  const std::vector<float> values = r.values.to_vector<float>();
  EXPECT_TRUE(std::isnan(values[0]) && std::isnan(values[1]));
  EXPECT_EQ(std::vector<float>(values.begin() + 2, values.end()), (std::vector<float>{3.0f, 3.0f, 2.0f}));
  EXPECT_EQ(r.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 2, 5, 4}));
}

}  // namespace
}  // namespace ld::test
