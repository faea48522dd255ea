// ops::gelu_mlp against the three ops it fuses, projection -> gelu (tanh) -> projection: the same
// bits forward and for every gradient, in f32, bf16 and fp16, for both weight layouts, with and
// without biases, and when only some inputs want gradients (a frozen first layer, a frozen input).
// Also registered with the op harness: forward against float64, gradients against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "ops/autocast.hpp"
#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"

namespace ld {
namespace {

using ops::ComputePrecision;
using ops::WeightLayout;

struct Inputs {
  Tensor x, fc_w, fc_b, proj_w, proj_b, upstream;
};

Inputs make_inputs(WeightLayout layout, bool biases, uint64_t seed) {
  Generator gen(seed);
  const int64_t in = 24, hidden = 40;
  const bool kn = layout == WeightLayout::in_out;
  Inputs t;
  t.x = randn({3, 7, in}, &gen);
  t.fc_w = ops::scale(randn(kn ? Shape{in, hidden} : Shape{hidden, in}, &gen), 0.3);
  t.proj_w = ops::scale(randn(kn ? Shape{hidden, in} : Shape{in, hidden}, &gen), 0.3);
  if (biases) t.fc_b = randn({hidden}, &gen), t.proj_b = randn({in}, &gen);
  t.upstream = randn({3, 7, in}, &gen);
  return t;
}

// Runs f on fresh leaves (requires_grad as asked), returns the output and the gradients.
std::vector<Tensor> run(const Inputs& in, const std::vector<bool>& wants, ComputePrecision p,
                        const std::function<Tensor(const std::vector<Tensor>&)>& f) {
  std::vector<Tensor> leaves;
  for (const Tensor* t : {&in.x, &in.fc_w, &in.fc_b, &in.proj_w, &in.proj_b})
    leaves.push_back(t->defined() ? t->clone().set_requires_grad(wants[leaves.size()]) : Tensor());
  Tensor y;
  {
    ops::AutocastScope autocast(p);
    y = f(leaves);
    ops::sum(ops::mul(y, in.upstream)).backward();
  }
  std::vector<Tensor> out{y};
  for (const Tensor& l : leaves) out.push_back(l.defined() && l.requires_grad() ? l.grad() : Tensor());
  return out;
}

void expect_same_bits(const std::vector<Tensor>& fused, const std::vector<Tensor>& separate, const std::string& what) {
  const char* names[] = {"y", "dx", "dW_fc", "db_fc", "dW_proj", "db_proj"};
  for (size_t i = 0; i < fused.size(); ++i) {
    ASSERT_EQ(fused[i].defined(), separate[i].defined()) << what << " " << names[i];
    if (!fused[i].defined()) continue;
    ASSERT_EQ(fused[i].shape(), separate[i].shape()) << what << " " << names[i];
    const std::vector<float> a = fused[i].to_vector<float>(), b = separate[i].to_vector<float>();
    for (size_t j = 0; j < a.size(); ++j) ASSERT_EQ(a[j], b[j]) << what << " " << names[i] << " element " << j;
  }
}

void check(WeightLayout layout, bool biases, ComputePrecision p, const std::vector<bool>& wants) {
  const Inputs in = make_inputs(layout, biases, 5);
  const auto fused = run(in, wants, p, [&](const std::vector<Tensor>& l) {
    return ops::gelu_mlp(l[0], l[1], l[2], l[3], l[4], layout);
  });
  const auto separate = run(in, wants, p, [&](const std::vector<Tensor>& l) {
    return ops::projection(ops::gelu(ops::projection(l[0], l[1], layout, l[2]), true), l[3], layout, l[4]);
  });
  std::string what = std::string(layout == WeightLayout::in_out ? "in_out" : "out_in") + (biases ? " biases" : "") +
                     " precision " + std::string(ops::compute_precision_name(p)) + " wants";
  for (bool w : wants) what += w ? " 1" : " 0";
  expect_same_bits(fused, separate, what);
}

TEST(GeluMlp, SameBitsAsTheThreeOpsForwardAndBackward) {
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16, ComputePrecision::fp16})
    for (WeightLayout layout : {WeightLayout::in_out, WeightLayout::out_in})
      for (bool biases : {true, false}) check(layout, biases, p, {true, true, true, true, true});
}

TEST(GeluMlp, OnlyTheWantedGradients) {
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16}) {
    check(WeightLayout::in_out, true, p, {false, true, true, true, true});    // the input is data
    check(WeightLayout::in_out, true, p, {true, false, false, true, true});   // the first layer frozen
    check(WeightLayout::in_out, true, p, {false, false, false, true, false}); // only the last weight
    check(WeightLayout::in_out, true, p, {true, true, true, false, false});   // the last layer frozen
  }
}

TEST(GeluMlp, WithoutGradientsItIsTheForwardAlone) {
  const Inputs in = make_inputs(WeightLayout::in_out, true, 9);
  autograd::NoGradGuard no_grad;
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16}) {
    ops::AutocastScope autocast(p);
    const Tensor fused = ops::gelu_mlp(in.x, in.fc_w, in.fc_b, in.proj_w, in.proj_b, WeightLayout::in_out);
    const Tensor separate = ops::projection(
        ops::gelu(ops::projection(in.x, in.fc_w, WeightLayout::in_out, in.fc_b), true), in.proj_w,
        WeightLayout::in_out, in.proj_b);
    EXPECT_EQ(fused.to_vector<float>(), separate.to_vector<float>()) << ops::compute_precision_name(p);
  }
}

TEST(GeluMlp, MismatchedShapesAreNamed) {
  const Inputs in = make_inputs(WeightLayout::in_out, true, 11);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string wrong_proj = message([&] {
    ops::gelu_mlp(in.x, in.fc_w, in.fc_b, in.fc_w, in.proj_b, WeightLayout::in_out);
  });
  EXPECT_NE(wrong_proj.find("does not take the fc weight's 40 outputs"), std::string::npos) << wrong_proj;
  const std::string wrong_bias = message([&] {
    ops::gelu_mlp(in.x, in.fc_w, in.proj_b, in.proj_w, in.proj_b, WeightLayout::in_out);
  });
  EXPECT_NE(wrong_bias.find("fc bias [24] is not [40]"), std::string::npos) << wrong_bias;
  const std::string wrong_x = message([&] {
    ops::gelu_mlp(in.upstream.narrow(-1, 0, 5), in.fc_w, in.fc_b, in.proj_w, in.proj_b, WeightLayout::in_out);
  });
  EXPECT_NE(wrong_x.find("does not match fc weight"), std::string::npos) << wrong_x;
}

}  // namespace
}  // namespace ld

namespace ld::test {
namespace {

// y = gelu_tanh(x W1 + b1) W2 + b2 in float64; W[i][o] is w.v[i * out + o] for [in, out], o * in + i
// for [out, in].
Ref ref_gelu_mlp(const std::vector<Ref>& t, ops::WeightLayout layout, bool biases) {
  const bool kn = layout == ops::WeightLayout::in_out;
  const Ref &x = t[0], &w1 = t[1], &w2 = t[biases ? 3 : 2];
  const int64_t in = x.size(-1), hidden = w1.size(kn ? 1 : 0), rows = x.numel() / in;
  auto weight = [kn](const Ref& w, int64_t i, int64_t o, int64_t n_in, int64_t n_out) {
    return w.v[size_t(kn ? i * n_out + o : o * n_in + i)];
  };
  Ref y(x.shape);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> h(static_cast<size_t>(hidden));
    for (int64_t j = 0; j < hidden; ++j) {
      double pre = biases ? t[2].v[size_t(j)] : 0.0;
      for (int64_t i = 0; i < in; ++i) pre += x.v[size_t(r * in + i)] * weight(w1, i, j, in, hidden);
      h[size_t(j)] = 0.5 * pre * (1 + std::tanh(std::sqrt(2 / M_PI) * (pre + 0.044715 * pre * pre * pre)));
    }
    for (int64_t o = 0; o < in; ++o) {
      double acc = biases ? t[4].v[size_t(o)] : 0.0;
      for (int64_t j = 0; j < hidden; ++j) acc += h[size_t(j)] * weight(w2, j, o, hidden, in);
      y.v[size_t(r * in + o)] = acc;
    }
  }
  return y;
}

// inputs: x, the fc weight, (its bias,) the proj weight, (its bias), in the layouts given
OpCase gelu_mlp_case(std::vector<InputSpec> inputs, ops::WeightLayout layout, bool biases, const std::string& variant) {
  OpCase c;
  c.op = "gelu_mlp";
  c.variant = variant;
  c.inputs = std::move(inputs);
  c.run = [layout, biases](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{biases ? ops::gelu_mlp(t[0], t[1], t[2], t[3], t[4], layout)
                                      : ops::gelu_mlp(t[0], t[1], Tensor(), t[2], Tensor(), layout)};
  };
  c.reference = [layout, biases](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_gelu_mlp(t, layout, biases)};
  };
  return c;
}

// Contiguous inputs of x [.., in] for `hidden` units; through draw, when given, each in a drawn layout.
std::vector<InputSpec> mlp_inputs(const Shape& x, int64_t hidden, ops::WeightLayout layout, bool biases,
                                  Rng* draw = nullptr) {
  const bool kn = layout == ops::WeightLayout::in_out;
  const int64_t in = x.back();
  std::vector<Shape> shapes{x, kn ? Shape{in, hidden} : Shape{hidden, in}};
  if (biases) shapes.push_back({hidden});
  shapes.push_back(kn ? Shape{hidden, in} : Shape{in, hidden});
  if (biases) shapes.push_back({in});
  std::vector<InputSpec> specs;
  for (const Shape& s : shapes) specs.push_back(draw ? in_random(*draw, s) : ::ld::test::in(s));
  return specs;
}

void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, 404, "gelu_mlp", 3, [](Rng& rng) {
    const Shape x = draw_small_shape(rng, int(draw_int(rng, 1, 3)));
    const auto layout = draw_bool(rng) ? ops::WeightLayout::in_out : ops::WeightLayout::out_in;
    const bool biases = draw_bool(rng);
    return gelu_mlp_case(mlp_inputs(x, draw_int(rng, 1, 9), layout, biases, &rng), layout, biases,
                         biases ? "biases" : "no biases");
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases{
      gelu_mlp_case(mlp_inputs({2, 3, 5}, 7, ops::WeightLayout::in_out, true), ops::WeightLayout::in_out, true,
                    "Conv1D weights, biases, 3-D input"),
      gelu_mlp_case(mlp_inputs({4, 6}, 9, ops::WeightLayout::out_in, false), ops::WeightLayout::out_in, false,
                    "Linear weights, no biases"),
  };
  add_random_shape_cases(cases);
  return cases;
}

}  // namespace
}  // namespace ld::test
