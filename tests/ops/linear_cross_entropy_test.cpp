// ops::linear_cross_entropy against the ops it fuses, linear -> cross_entropy (under bf16 with the
// logits rounded to bf16 between them): the same bits when the rows fit one chunk (f32, bf16, fp16),
// and to f32 rounding over several chunks, for every
// gradient, with and without a bias, ignored rows, label smoothing, sum and mean, an upstream
// gradient other than 1 and frozen inputs. Also registered with the op harness: forward against
// float64, gradients against finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "ops/autocast.hpp"
#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"
#include "test_util.hpp"

namespace ld {
namespace {

using ops::ComputePrecision;
using Reduction = ops::CrossEntropyOptions::Reduction;

struct Inputs {
  Tensor x, weight, bias, targets;
};

// 3 x 7 rows of width 24 over a vocabulary of 37; every fourth target ignored (-100), which leaves 16:
// the mean's 1/16 scales exactly, so the fused op (which scales after its products) and the two ops
// (which scale dlogits before rounding them to 16 bits) can give the same bits.
Inputs make_inputs(bool bias, DType target_dtype, uint64_t seed) {
  Generator gen(seed);
  Inputs t;
  t.x = randn({3, 7, 24}, &gen);
  t.weight = ops::scale(randn({37, 24}, &gen), 0.4);
  if (bias) t.bias = randn({37}, &gen);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 21; ++i) ids.push_back(i % 4 == 3 ? -100 : (i * 11) % 37);
  t.targets = ops::cast(from_vector(ids, {3, 7}), target_dtype);
  return t;
}

struct Outcome {
  Tensor loss, dx, dw, db;
};

// The loss times `upstream` (so the backward's scale is tested) and the gradients of the leaves that
// want one (x, weight, bias).
template <typename F>
Outcome run(const Inputs& in, const std::vector<bool>& wants, ComputePrecision p, double upstream, F f) {
  Tensor x = in.x.clone().set_requires_grad(wants[0]);
  Tensor w = in.weight.clone().set_requires_grad(wants[1]);
  Tensor b = in.bias.defined() ? in.bias.clone().set_requires_grad(wants[2]) : Tensor();
  Outcome r;
  {
    ops::AutocastScope autocast(p);
    r.loss = f(x, w, b);
    if (wants[0] || wants[1] || (b.defined() && wants[2])) ops::scale(r.loss, upstream).backward();
  }
  if (wants[0]) r.dx = x.grad();
  if (wants[1]) r.dw = w.grad();
  if (b.defined() && wants[2]) r.db = b.grad();
  return r;
}

// Every element equal (rtol 0), or within rtol of the largest magnitude of the expected tensor.
void expect_close(const Outcome& fused, const Outcome& separate, double rtol, const std::string& what) {
  const char* names[] = {"loss", "dx", "dW", "db"};
  const Tensor* a[] = {&fused.loss, &fused.dx, &fused.dw, &fused.db};
  const Tensor* b[] = {&separate.loss, &separate.dx, &separate.dw, &separate.db};
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(a[i]->defined(), b[i]->defined()) << what << " " << names[i];
    if (!a[i]->defined()) continue;
    ASSERT_EQ(a[i]->shape(), b[i]->shape()) << what << " " << names[i];
    const std::vector<float> u = a[i]->to_vector<float>(), v = b[i]->to_vector<float>();
    float scale = 0;
    for (float e : v) scale = std::max(scale, std::abs(e));
    for (size_t j = 0; j < u.size(); ++j) {
      if (rtol == 0)
        ASSERT_EQ(u[j], v[j]) << what << " " << names[i] << " element " << j;
      else
        ASSERT_NEAR(u[j], v[j], rtol * scale) << what << " " << names[i] << " element " << j;
    }
  }
}

// What the fused op computes, as separate ops: under bf16 the logits are rounded to bf16 (PyTorch's
// autocast linear writes them so) and the loss computed in f32 from them; the cast's backward rounds
// dlogits to bf16 too. fp16 keeps f32 logits (the fused op runs these very ops there).
Tensor reference_loss(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& targets,
                      const ops::CrossEntropyOptions& o, ComputePrecision p) {
  Tensor logits = ops::linear(x, w, b);
  if (p == ComputePrecision::bf16) logits = ops::cast(ops::cast(logits, DType::bf16), DType::f32);
  return ops::cross_entropy(logits, targets, o);
}

void check(const Inputs& in, const ops::CrossEntropyOptions& o, ComputePrecision p, int64_t chunk_rows,
           const std::vector<bool>& wants, double upstream, double rtol, const std::string& what) {
  const Outcome fused = run(in, wants, p, upstream, [&](const Tensor& x, const Tensor& w, const Tensor& b) {
    return ops::linear_cross_entropy(x, w, b, in.targets, o, chunk_rows);
  });
  const Outcome separate = run(in, wants, p, upstream, [&](const Tensor& x, const Tensor& w, const Tensor& b) {
    return reference_loss(x, w, b, in.targets, o, p);
  });
  expect_close(fused, separate, rtol, what + " precision " + std::string(ops::compute_precision_name(p)) +
                                          " chunk_rows " + std::to_string(chunk_rows));
}

ops::CrossEntropyOptions opts(Reduction r, double smoothing = 0.0) {
  ops::CrossEntropyOptions o;
  o.reduction = r;
  o.label_smoothing = smoothing;
  return o;
}

TEST(LinearCrossEntropy, OneChunkGivesTheSameBitsAsLinearThenCrossEntropy) {
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16, ComputePrecision::fp16})
    for (bool bias : {true, false})
      for (Reduction r : {Reduction::mean, Reduction::sum})
        check(make_inputs(bias, DType::i64, 3), opts(r), p, 0, {true, true, true}, 1.0, 0.0,
              std::string(bias ? "bias" : "no bias") + (r == Reduction::sum ? " sum" : " mean"));
}

// dW and db add up chunk by chunk, in another order than one product over every row. Under bf16 the
// upstream gradient is a power of 2 (see make_inputs).
TEST(LinearCrossEntropy, ChunksAgreeWithOneProductToRounding) {
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16})
    for (int64_t chunk : {1, 4, 20, 21, 64}) {
      const double upstream = p == ComputePrecision::f32 ? 2.5 : 2.0;
      check(make_inputs(true, DType::i32, 7), opts(Reduction::mean, 0.1), p, chunk, {true, true, true}, upstream,
            1e-5, "smoothing, i32, upstream " + std::to_string(upstream));
      check(make_inputs(false, DType::i64, 8), opts(Reduction::sum), p, chunk, {true, true, true}, -0.5, 1e-5,
            "sum, upstream -0.5");
    }
}

TEST(LinearCrossEntropy, OnlyTheWantedGradients) {
  const Inputs in = make_inputs(true, DType::i64, 9);
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16}) {
    check(in, opts(Reduction::mean), p, 5, {false, true, true}, 1.0, 1e-5, "frozen input");
    check(in, opts(Reduction::mean), p, 5, {true, false, false}, 1.0, 1e-5, "frozen head");
    check(in, opts(Reduction::mean), p, 5, {false, false, true}, 1.0, 1e-5, "bias only");
  }
}

TEST(LinearCrossEntropy, WithoutGradientsItIsTheLossAlone) {
  const Inputs in = make_inputs(true, DType::i64, 10);
  autograd::NoGradGuard no_grad;
  const Tensor fused = ops::linear_cross_entropy(in.x, in.weight, in.bias, in.targets, {}, 4);
  const Tensor separate = ops::cross_entropy(ops::linear(in.x, in.weight, in.bias), in.targets);
  EXPECT_FALSE(fused.requires_grad());
  EXPECT_NEAR(fused.item(), separate.item(), 1e-6);
}

TEST(LinearCrossEntropy, ReductionNoneIsTheTwoOps) {
  const Inputs in = make_inputs(true, DType::i64, 11);
  const ops::CrossEntropyOptions o = opts(Reduction::none, 0.2);
  const Tensor fused = ops::linear_cross_entropy(in.x, in.weight, in.bias, in.targets, o);
  const Tensor separate = ops::cross_entropy(ops::linear(in.x, in.weight, in.bias), in.targets, o);
  ASSERT_EQ(fused.shape(), (Shape{3, 7}));
  EXPECT_EQ(fused.to_vector<float>(), separate.to_vector<float>());
}

TEST(LinearCrossEntropy, AllIgnoredGivesZeroLossAndZeroGradients) {
  Inputs in = make_inputs(true, DType::i64, 12);
  in.targets = full({3, 7}, -100, DType::i64);
  const Outcome r = run(in, {true, true, true}, ComputePrecision::f32, 1.0, [&](const Tensor& x, const Tensor& w,
                                                                            const Tensor& b) {
    return ops::linear_cross_entropy(x, w, b, in.targets, {}, 4);
  });
  EXPECT_EQ(r.loss.item(), 0.0);
  for (const Tensor* g : {&r.dx, &r.dw, &r.db})
    for (float v : g->to_vector<float>()) ASSERT_EQ(v, 0.0f);
}

TEST(LinearCrossEntropy, NoRowsGivesZeroLossAndZeroGradients) {
  Tensor x = zeros({0, 5}).set_requires_grad(true), w = ones({4, 5}).set_requires_grad(true);
  Tensor loss = ops::linear_cross_entropy(x, w, Tensor(), zeros({0}, DType::i64));
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  EXPECT_EQ(x.grad().shape(), (Shape{0, 5}));
  for (float v : w.grad().to_vector<float>()) ASSERT_EQ(v, 0.0f);
}

TEST(LinearCrossEntropy, BadInputsAreNamed) {
  const Inputs in = make_inputs(true, DType::i64, 13);
  const auto lce = [](const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& t,
                      ops::CrossEntropyOptions o = {}, int64_t chunk = 0) {
    return test::error_message([&] { ops::linear_cross_entropy(x, w, b, t, o, chunk); });
  };
  test::expect_mentions(lce(in.x.narrow(-1, 0, 5), in.weight, in.bias, in.targets),
                        {"linear_cross_entropy", "[3, 7, 5]", "[37, 24]"});
  test::expect_mentions(lce(in.x, in.weight, in.bias.narrow(0, 0, 3), in.targets),
                        {"linear_cross_entropy", "bias", "[3]", "[37]"});
  test::expect_mentions(lce(in.x, in.weight, in.bias, in.targets.narrow(1, 0, 2)),
                        {"linear_cross_entropy", "targets", "[3, 2]", "[3, 7]"});
  test::expect_mentions(lce(in.x, in.weight, in.bias, full({3, 7}, 37, DType::i64)),
                        {"linear_cross_entropy", "target 37", "[0, 0]", "[0, 37)"});
  test::expect_mentions(lce(in.x, in.weight, in.bias, in.targets, opts(Reduction::mean, 2.0)),
                        {"linear_cross_entropy", "label_smoothing"});
  test::expect_mentions(lce(in.x, in.weight, in.bias, in.targets, {}, -1), {"linear_cross_entropy", "chunk_rows"});
  test::expect_mentions(lce(in.x, in.weight.reshape({37, 24, 1}), in.bias, in.targets),
                        {"linear_cross_entropy", "weight", "[37, 24, 1]"});
}

}  // namespace
}  // namespace ld

namespace ld::test {
namespace {

// cross_entropy(x W^T + b) in float64, W [V, C].
Ref ref_linear_cross_entropy(const std::vector<Ref>& t, bool bias, const ops::CrossEntropyOptions& o) {
  const Ref &x = t[0], &w = t[1], &targets = t[bias ? 3 : 2];
  const int64_t in = x.size(-1), vocab = w.size(0), rows = x.numel() / in;
  Shape shape = x.shape;
  shape.back() = vocab;
  Ref logits(shape);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < vocab; ++v) {
      double acc = bias ? t[2].v[size_t(v)] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += x.v[size_t(r * in + i)] * w.v[size_t(v * in + i)];
      logits.v[size_t(r * vocab + v)] = acc;
    }
  return ref_cross_entropy(logits, targets, o);
}

OpCase lce_case(std::vector<InputSpec> inputs, bool bias, ops::CrossEntropyOptions o, int64_t chunk_rows,
                const std::string& variant) {
  OpCase c;
  c.op = "linear_cross_entropy";
  c.variant = variant;
  c.inputs = std::move(inputs);
  c.run = [bias, o, chunk_rows](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{bias ? ops::linear_cross_entropy(t[0], t[1], t[2], t[3], o, chunk_rows)
                                    : ops::linear_cross_entropy(t[0], t[1], Tensor(), t[2], o, chunk_rows)};
  };
  c.reference = [bias, o](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_linear_cross_entropy(t, bias, o)};
  };
  return c;
}

// x [rows..., C], weight [V, C], (bias [V],) targets [rows...] drawn from [lo, V)
std::vector<InputSpec> lce_inputs(const Shape& x, int64_t vocab, bool bias, int64_t lo, Rng* draw = nullptr) {
  std::vector<Shape> shapes{x, {vocab, x.back()}};
  if (bias) shapes.push_back({vocab});
  std::vector<InputSpec> specs;
  for (const Shape& s : shapes) specs.push_back(draw ? in_random(*draw, s) : ::ld::test::in(s));
  specs.push_back(index_input(Shape(x.begin(), x.end() - 1), lo, vocab));
  return specs;
}

ops::CrossEntropyOptions lce_opts(ops::CrossEntropyOptions::Reduction r, double smoothing, int64_t ignore) {
  ops::CrossEntropyOptions o;
  o.reduction = r, o.label_smoothing = smoothing, o.ignore_index = ignore;
  return o;
}

using R = ops::CrossEntropyOptions::Reduction;

LD_OP_CASES {
  std::vector<OpCase> cases{
      lce_case(lce_inputs({2, 3, 5}, 7, true, 0), true, lce_opts(R::mean, 0.0, -100), 0, "bias, 3-D, one chunk"),
      lce_case(lce_inputs({6, 4}, 9, false, -1), false, lce_opts(R::sum, 0.1, -1), 4,
               "no bias, ignored rows, smoothing, sum, chunks of 4"),
      lce_case(lce_inputs({5, 3}, 6, true, 0), true, lce_opts(R::none, 0.0, -100), 2, "reduction none"),
  };
  add_random_cases(cases, 505, "linear_cross_entropy", 3, [](Rng& rng) {
    const Shape x = draw_small_shape(rng, int(draw_int(rng, 1, 3)));
    const bool bias = draw_bool(rng);
    const int64_t vocab = draw_int(rng, 1, 9), chunk = draw_int(rng, 0, 4);
    return lce_case(lce_inputs(x, vocab, bias, -1, &rng), bias, lce_opts(R::mean, 0.0, -1), chunk,
                    std::string(bias ? "bias" : "no bias") + ", chunk_rows " + std::to_string(chunk));
  });
  return cases;
}

}  // namespace
}  // namespace ld::test
