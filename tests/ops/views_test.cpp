#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

Ref ref_narrow(const Ref& x, int64_t dim, int64_t start, int64_t len) {
  Shape s = x.shape;
  s[size_t(dim)] = len;
  Ref r(s);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.shape[size_t(d)];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.shape[size_t(d)];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t k = 0; k < inner; ++k)
        r.v[size_t((o * len + i) * inner + k)] = x.v[size_t((o * x.shape[size_t(dim)] + start + i) * inner + k)];
  return r;
}

// Views feed a mul so that the gradient reaching the view is not all ones.
LD_OP_CASES {
  std::vector<OpCase> cases;
  OpCase reshape;
  reshape.op = "reshape";
  reshape.inputs = {in({4, 6}, Layout::transposed)};  // non-contiguous: reshape must copy
  reshape.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].reshape({2, -1, 3})}; };
  reshape.reference = [](const std::vector<Ref>& t) {
    Ref r = t[0];
    r.shape = {2, 4, 3};
    return std::vector<Ref>{r};
  };
  cases.push_back(reshape);

  OpCase permute;
  permute.op = "permute";
  permute.inputs = {in({2, 3, 4})};
  permute.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].permute({2, 0, 1}).contiguous()}; };
  permute.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{ref_permute(t[0], {2, 0, 1})}; };
  cases.push_back(permute);

  OpCase narrow;
  narrow.op = "narrow";
  narrow.inputs = {in({3, 7, 2})};
  narrow.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].narrow(1, 2, 4)}; };
  narrow.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{ref_narrow(t[0], 1, 2, 4)}; };
  cases.push_back(narrow);

  OpCase expand;
  expand.op = "expand";
  expand.inputs = {in({3, 1})};
  expand.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].expand({2, 3, 4})}; };
  expand.reference = [](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_broadcast(t[0], Ref({2, 3, 4}), [](double a, double) { return a; })};
  };
  cases.push_back(expand);

  OpCase contiguous;
  contiguous.op = "contiguous";
  contiguous.inputs = {in({5, 3}, Layout::transposed)};
  contiguous.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].contiguous()}; };
  contiguous.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{t[0]}; };
  cases.push_back(contiguous);

  OpCase cast;
  cast.op = "cast";
  cast.variant = "f32 -> bf16 -> f32 round trip keeps 8 bits of mantissa";
  cast.inputs = {in({4, 5})};
  cast.forward_rtol = 1.0 / 256, cast.forward_atol = 1e-30;
  cast.grad_rtol = 1.0 / 128;  // the gradient makes the same round trip
  cast.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::cast(ops::cast(t[0], DType::bf16), DType::f32)}; };
  cast.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{t[0]}; };
  cases.push_back(cast);
  return cases;
}

}  // namespace
}  // namespace ld::test
