#include <algorithm>
#include <numeric>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
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

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(reduce_case("sum", {-1}, false, in({3, 7})));
  cases.push_back(reduce_case("sum", {0, 2}, true, in({4, 3, 5}, Layout::transposed)));
  cases.push_back(reduce_case("sum", {1}, false, in({5, 1, 3}, Layout::sliced)));
  cases.push_back(reduce_case("sum", {0, 1, 2}, false, in({2, 3, 4})));
  cases.push_back(reduce_case("mean", {1}, true, in({2, 9, 3})));
  cases.push_back(reduce_case("mean", {0}, false, in({1000, 3})));

  OpCase am;
  am.op = "argmax";
  am.inputs = {in({4, 6, 5}, Layout::transposed)};
  am.check_grad = false;
  am.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::argmax(t[0], 1)}; };
  am.reference = [](const std::vector<Ref>& t) {
    const Ref& x = t[0];
    Ref r({x.shape[0], x.shape[2]});
    for (int64_t i = 0; i < x.shape[0]; ++i)
      for (int64_t k = 0; k < x.shape[2]; ++k) {
        int64_t best = 0;
        for (int64_t j = 1; j < x.shape[1]; ++j)
          if (x({i, j, k}) > x({i, best, k})) best = j;
        r({i, k}) = double(best);
      }
    return std::vector<Ref>{r};
  };
  cases.push_back(am);

  for (int64_t dim : {int64_t(-1), int64_t(0)}) {
    OpCase tk;
    tk.op = "topk";
    tk.variant = dim == 0 ? "dim 0" : "last dim";
    tk.inputs = {in({7, 5})};
    tk.run = [dim](const std::vector<Tensor>& t) {
      auto r = ops::topk(t[0], 3, dim);
      return std::vector<Tensor>{r.values, r.indices};
    };
    tk.reference = [dim](const std::vector<Ref>& t) {
      Ref x = dim == 0 ? ref_permute(t[0], {1, 0}) : t[0];
      int64_t rows = x.shape[0], cols = x.shape[1];
      Ref vals({rows, 3}), idx({rows, 3});
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int64_t> order(static_cast<size_t>(cols));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x({r, a}) > x({r, b}); });
        for (int64_t j = 0; j < 3; ++j) vals({r, j}) = x({r, order[size_t(j)]}), idx({r, j}) = double(order[size_t(j)]);
      }
      if (dim == 0) vals = ref_permute(vals, {1, 0}), idx = ref_permute(idx, {1, 0});
      return std::vector<Ref>{vals, idx};
    };
    cases.push_back(tk);
  }
  return cases;
}

}  // namespace
}  // namespace ld::test
