#include "ops/op_harness.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <map>
#include <set>

#include "autograd/engine.hpp"
#include "ops/op_list.hpp"
#include "ops/ops.hpp"

namespace ld::test {

namespace {

std::vector<CaseFactory>& factories() {
  static std::vector<CaseFactory> f;
  return f;
}

struct Inputs {
  std::vector<Tensor> tensors;
  std::vector<Ref> refs;  // float64 copies of exactly the values the tensors hold
};

Tensor make_layout(const std::vector<float>& values, const Shape& shape, Layout layout) {
  if (layout == Layout::transposed && shape.size() >= 2) {
    Shape t = shape;
    std::swap(t[t.size() - 1], t[t.size() - 2]);
    // store transposed in memory, then view it back in the requested shape
    Tensor base = from_vector(values, shape).transpose(-1, -2).contiguous();
    EXPECT_EQ(base.shape(), t);
    return base.detach().transpose(-1, -2).detach();
  }
  if (layout == Layout::sliced && !shape.empty()) {
    // narrow dim 0 (an offset) and, from 2 dims on, the last dim too (gaps between rows)
    Shape big = shape;
    big[0] += 3;
    if (shape.size() >= 2) big.back() += 2;
    Tensor base = zeros(big);
    Tensor view = base.narrow(0, 2, shape[0]).detach();
    if (shape.size() >= 2) view = view.narrow(-1, 1, shape.back()).detach();
    view.copy_(from_vector(values, shape));
    return view;
  }
  return from_vector(values, shape);
}

Inputs make_inputs(const OpCase& c) {
  std::mt19937_64 rng(c.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Inputs out;
  for (const InputSpec& spec : c.inputs) {
    int64_t n = shape_numel(spec.shape);
    Ref ref(spec.shape);
    if (spec.kind == InputKind::index) {
      std::uniform_int_distribution<int64_t> pick(int64_t(spec.lo), int64_t(spec.hi) - 1);
      std::vector<int64_t> ids(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) ref.v[size_t(i)] = double(ids[size_t(i)] = pick(rng));
      Tensor t = from_vector(ids, spec.shape);
      out.tensors.push_back(spec.dtype == DType::i64 ? t : t.to(spec.dtype));
    } else if (spec.kind == InputKind::mask) {
      std::vector<uint8_t> m(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) ref.v[size_t(i)] = double(m[size_t(i)] = unit(rng) < spec.lo ? 1 : 0);
      out.tensors.push_back(from_vector(m, spec.shape));
    } else {
      std::vector<float> f(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        double x = spec.kind == InputKind::positive ? 0.5 + 1.5 * unit(rng) : normal(rng);
        f[size_t(i)] = float(x);
        ref.v[size_t(i)] = double(f[size_t(i)]);
      }
      Tensor t = make_layout(f, spec.shape, spec.layout);
      if (spec.requires_grad) t.set_requires_grad(true);
      out.tensors.push_back(t);
    }
    out.refs.push_back(std::move(ref));
  }
  return out;
}

double weighted_sum(const std::vector<Ref>& outs, const std::vector<Ref>& weights) {
  double s = 0.0;
  for (size_t k = 0; k < outs.size(); ++k)
    for (size_t i = 0; i < outs[k].v.size(); ++i) s += outs[k].v[i] * weights[k].v[i];
  return s;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double tol = atol + rtol * std::fabs(want[i]);
    bool ok = std::fabs(got[i] - want[i]) <= tol || (std::isnan(got[i]) && std::isnan(want[i])) ||
              (std::isinf(want[i]) && got[i] == want[i]);
    if (!ok && reported++ < 5)
      ADD_FAILURE() << what << " [" << i << "]: got " << got[i] << ", want " << want[i] << " (tol " << tol << ")";
  }
}

std::vector<double> to_doubles(const Tensor& t) {
  std::vector<double> d;
  if (t.dtype() == DType::i64) {
    for (int64_t x : t.to_vector<int64_t>()) d.push_back(double(x));
  } else {
    for (float x : t.to(DType::f32).to_vector<float>()) d.push_back(double(x));
  }
  return d;
}

}  // namespace

bool register_cases(const char*, CaseFactory factory) {
  factories().push_back(std::move(factory));
  return true;
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  for (auto& f : factories())
    for (auto& c : f()) cases.push_back(std::move(c));
  return cases;
}

class OpCheck : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpCheck, ForwardMatchesFloat64AndBackwardMatchesFiniteDifferences) {
  const OpCase& c = GetParam();
  Inputs inputs = make_inputs(c);
  std::vector<Tensor> outs = c.run(inputs.tensors);
  std::vector<Ref> want = c.reference(inputs.refs);
  ASSERT_EQ(outs.size(), want.size()) << "number of outputs";
  for (size_t k = 0; k < outs.size(); ++k) {
    ASSERT_EQ(outs[k].shape(), want[k].shape) << "output " << k << " shape";
    expect_close(to_doubles(outs[k]), want[k].v, c.forward_rtol, c.forward_atol, "output " + std::to_string(k));
  }
  if (!c.check_grad) return;

  // L = sum_k <out_k, W_k> over floating outputs; W random.
  std::mt19937_64 rng(c.seed + 1000);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<Ref> weights;
  std::vector<Tensor> roots, seeds;
  for (size_t k = 0; k < outs.size(); ++k) {
    Ref w(want[k].shape);
    bool floating = is_floating(outs[k].dtype()) && outs[k].requires_grad();
    for (auto& x : w.v) x = floating ? double(float(normal(rng))) : 0.0;
    if (floating) {
      std::vector<float> wf(w.v.begin(), w.v.end());
      roots.push_back(outs[k]);
      seeds.push_back(from_vector(wf, w.shape));
    }
    weights.push_back(std::move(w));
  }
  ASSERT_FALSE(roots.empty()) << "no differentiable output; set check_grad = false";
  autograd::run_backward(roots, seeds);

  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (c.inputs[i].kind == InputKind::index || c.inputs[i].kind == InputKind::mask || !c.inputs[i].requires_grad)
      continue;
    Tensor g = inputs.tensors[i].grad();
    ASSERT_TRUE(g.defined()) << "input " << i << " got no gradient";
    ASSERT_EQ(g.shape(), c.inputs[i].shape) << "input " << i << " gradient shape";
    std::vector<double> fd(inputs.refs[i].v.size());
    for (size_t j = 0; j < fd.size(); ++j) {
      std::vector<Ref> plus = inputs.refs, minus = inputs.refs;
      plus[i].v[j] += c.fd_step;
      minus[i].v[j] -= c.fd_step;
      fd[j] = (weighted_sum(c.reference(plus), weights) - weighted_sum(c.reference(minus), weights)) / (2 * c.fd_step);
    }
    expect_close(to_doubles(g), fd, c.grad_rtol, c.grad_atol, "d/d input " + std::to_string(i));
  }
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
  std::string name = info.param.op + "_" + std::to_string(info.index);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpCheck, ::testing::ValuesIn(all_cases()), case_name);

TEST(OpCoverage, EveryListedOpHasATestCase) {
  std::set<std::string> tested;
  for (const OpCase& c : all_cases()) tested.insert(c.op);
  std::vector<std::string> listed;
#define LD_LIST_OP(name) listed.push_back(#name);
  LD_FOR_EACH_OP(LD_LIST_OP)
#undef LD_LIST_OP
  for (const std::string& op : listed) EXPECT_TRUE(tested.count(op)) << "op '" << op << "' has no test case";
  std::map<std::string, int> random_cases;
  for (const OpCase& c : all_cases())
    if (c.variant.rfind("random (", 0) == 0) ++random_cases[c.op];
  for (const std::string& op : listed)
    EXPECT_GE(random_cases[op], 3) << "op '" << op << "' needs at least 3 cases with drawn shapes (random_shapes.hpp)";
  for (const std::string& op : tested)
    EXPECT_NE(std::find(listed.begin(), listed.end(), op), listed.end()) << "test case for unlisted op '" << op << "'";
}

}  // namespace ld::test
