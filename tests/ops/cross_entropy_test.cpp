#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "autograd/engine.hpp"
#include "backend/backend.hpp"
#include "core/rng.hpp"
#include "ops/op_harness.hpp"
#include "test_util.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

using Reduction = ops::CrossEntropyOptions::Reduction;

OpCase ce_case(InputSpec logits, InputSpec targets, ops::CrossEntropyOptions o, const std::string& variant) {
  OpCase c;
  c.op = "cross_entropy";
  c.variant = variant;
  c.inputs = {logits, targets};
  c.run = [o](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::cross_entropy(t[0], t[1], o)}; };
  c.reference = [o](const std::vector<Ref>& t) { return std::vector<Ref>{ref_cross_entropy(t[0], t[1], o)}; };
  return c;
}

ops::CrossEntropyOptions opts(Reduction reduction, double smoothing = 0.0, int64_t ignore = -100) {
  ops::CrossEntropyOptions o;
  o.reduction = reduction;
  o.label_smoothing = smoothing;
  o.ignore_index = ignore;
  return o;
}

constexpr uint64_t kRandomSeed = 1111;

const char* reduction_name(Reduction r) { return r == Reduction::mean ? "mean" : r == Reduction::sum ? "sum" : "none"; }

// logits [..., V] with 0-2 leading dims and V in 1..9, in a drawn layout; i32 or i64 targets; the
// reduction and the smoothing drawn. ignore_index is drawn a third of the time: -1 (targets then
// drawn from [-1, V)) or a real class, which must then be skipped like any ignored row.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "cross_entropy", 6, [](Rng& rng) {
    Shape rows = draw_shape(rng, int(draw_int(rng, 0, 2)));
    int64_t vocab = draw_int(rng, 1, 9);
    Shape logits = rows;
    logits.push_back(vocab);
    Reduction reduction = draw_one(rng, std::vector<Reduction>{Reduction::mean, Reduction::sum, Reduction::none});
    ops::CrossEntropyOptions o = opts(reduction, draw_one(rng, std::vector<double>{0.0, 0.0, 0.1, 0.3}));
    int64_t lo = 0;
    std::string variant = std::string(reduction_name(o.reduction)) + ", smoothing " + num_str(o.label_smoothing);
    if (draw_bool(rng, 1.0 / 3)) {
      o.ignore_index = draw_bool(rng) ? -1 : draw_int(rng, 0, vocab - 1);
      lo = std::min<int64_t>(o.ignore_index, 0);
      variant += ", ignore_index " + std::to_string(o.ignore_index);
    }
    InputSpec targets = index_input(rows, lo, vocab, draw_bool(rng) ? DType::i32 : DType::i64);
    return ce_case(in_random(rng, logits), targets, o, variant);
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(ce_case(in({4, 7}), index_input({4}, 0, 7), opts(Reduction::mean), "mean, i64"));
  cases.push_back(ce_case(in({2, 3, 5}), index_input({2, 3}, 0, 5, DType::i32), opts(Reduction::sum), "3-D, i32, sum"));
  cases.push_back(ce_case(in({5, 9}), index_input({5}, 0, 9), opts(Reduction::none, 0.1), "label smoothing, none"));
  // targets drawn from [-1, 3): about a quarter of the rows are ignored
  cases.push_back(ce_case(in({10, 5}), index_input({10}, -1, 3), opts(Reduction::mean, 0.0, -1), "ignore_index, mean"));
  cases.push_back(ce_case(in({8, 6}), index_input({8}, -1, 6, DType::i32), opts(Reduction::none, 0.2, -1),
                          "ignore_index, smoothing, i32, none"));
  cases.push_back(ce_case(in({5, 6}, Layout::transposed), index_input({5}, 0, 6), opts(Reduction::mean, 0.05),
                          "transposed logits, smoothing"));
  cases.push_back(ce_case(in({3, 70}, Layout::sliced), index_input({3}, 0, 70), opts(Reduction::mean),
                          "sliced logits, vocab past the lane width"));
  cases.push_back(ce_case(in({1, 1}), index_input({1}, 0, 1), opts(Reduction::mean), "vocab 1: loss 0"));
  cases.push_back(ce_case(in({7}), index_input({}, 0, 7), opts(Reduction::sum, 0.3), "1-D logits, scalar target"));
  add_random_shape_cases(cases);
  return cases;
}

TEST(CrossEntropy, ErrorsNameTheOpTheShapesAndTheFirstBadTarget) {
  Tensor logits = zeros({2, 5});
  EXPECT_THROW(ops::cross_entropy(logits, from_vector<int64_t>({0, 1, 2}, {3})), Error);
  expect_mentions(error_message([&] { ops::cross_entropy(logits, from_vector<int64_t>({0, 1, 2}, {3})); }),
                  {"cross_entropy", "[3]", "[2, 5]"});
  expect_mentions(error_message([&] { ops::cross_entropy(zeros({2, 3, 5}), from_vector<int64_t>({0, 1}, {2})); }),
                  {"cross_entropy", "[2]", "[2, 3, 5]", "[2, 3]"});
  expect_mentions(error_message([&] { ops::cross_entropy(logits, from_vector<int64_t>({0, 7}, {2})); }),
                  {"cross_entropy", "target 7", "[1]", "[0, 5)"});
  expect_mentions(error_message([&] { ops::cross_entropy(zeros({2, 2, 5}), from_vector<int32_t>({0, -100, -3, 9}, {2, 2})); }),
                  {"target -3", "[1, 0]"});  // the first bad one; -100 is the default ignore_index
  expect_mentions(error_message([&] { ops::cross_entropy(logits, zeros({2})); }), {"cross_entropy", "targets"});
  expect_mentions(error_message([&] { ops::cross_entropy(logits, from_vector<int64_t>({0, 1}, {2}), opts(Reduction::mean, 1.5)); }),
                  {"cross_entropy", "label_smoothing"});
}

TEST(CrossEntropy, AllTargetsIgnoredGivesZeroLossAndZeroGradient) {
  for (double smoothing : {0.0, 0.1}) {
    for (Reduction reduction : {Reduction::mean, Reduction::sum, Reduction::none}) {
      Tensor logits = randn({3, 6}).set_requires_grad(true);
      Tensor targets = from_vector<int64_t>({-100, -100, -100}, {3});
      Tensor loss = ops::cross_entropy(logits, targets, opts(reduction, smoothing));
      for (float v : loss.to_vector()) EXPECT_EQ(v, 0.0f);
      ops::sum(loss).backward();
      for (float g : logits.grad().to_vector()) EXPECT_EQ(g, 0.0f);
    }
  }
}

// A GPT-2 sized vocabulary: the chunked online log-sum-exp against a float64 computation.
TEST(CrossEntropy, LargeVocabularyMatchesFloat64) {
  const int64_t rows = 3, vocab = 50257;
  std::mt19937_64 rng(4);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::vector<float> xv(static_cast<size_t>(rows * vocab));
  for (auto& v : xv) v = float(normal(rng));
  xv[size_t(vocab + 40000)] = 25.0f;  // a confident row whose max sits in a late chunk
  std::vector<int64_t> tv = {123, 40000, 50256};
  for (double smoothing : {0.0, 0.1}) {
    Tensor logits = from_vector(xv, {rows, vocab}).set_requires_grad(true);
    Tensor loss = ops::cross_entropy(logits, from_vector(tv, {rows}), opts(Reduction::mean, smoothing));
    loss.backward();
    std::vector<float> grad = logits.grad().to_vector();
    double want_loss = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = xv.data() + r * vocab;
      double m = x[0], s = 0, sum_x = 0;
      for (int64_t j = 0; j < vocab; ++j) m = std::max(m, double(x[j]));
      for (int64_t j = 0; j < vocab; ++j) s += std::exp(double(x[j]) - m), sum_x += x[j];
      double lse = m + std::log(s);
      int64_t t = tv[size_t(r)];
      want_loss += ((1 - smoothing) * (lse - x[t]) + smoothing * (lse - sum_x / double(vocab))) / double(rows);
      for (int64_t j = 0; j < vocab; ++j) {
        double want = (std::exp(double(x[j]) - lse) - smoothing / double(vocab) - (j == t ? 1 - smoothing : 0.0)) /
                      double(rows);
        // p carries the float rounding of lse (~1e-6 absolute near p = 1, as in PyTorch's log_softmax)
        ASSERT_NEAR(grad[size_t(r * vocab + j)], want, 1e-4 * std::fabs(want) + 1e-6 / double(rows))
            << "row " << r << " col " << j << " smoothing " << smoothing;
      }
    }
    EXPECT_NEAR(loss.item(), want_loss, 1e-5 * std::fabs(want_loss));
  }
}

TEST(CrossEntropy, SecondBackwardWithoutRetainGraphSaysWhatToDo) {
  Tensor logits = randn({2, 4}).set_requires_grad(true);
  Tensor loss = ops::cross_entropy(logits, from_vector<int64_t>({1, 3}, {2}));
  loss.backward();
  expect_mentions(error_message([&] { loss.backward(); }), {"retain_graph"});
}

TEST(CrossEntropy, ReductionNoneKeepsTheTargetShape) {
  Tensor loss = ops::cross_entropy(randn({2, 3, 4}), from_vector<int32_t>({0, 1, 2, 3, 0, 1}, {2, 3}),
                                   opts(Reduction::none));
  EXPECT_EQ(loss.shape(), (Shape{2, 3}));
}

}  // namespace
}  // namespace ld::test

namespace ld::test {
namespace {

// The kernels on 16-bit logits whose rows are padded (an LM head's under autocast): the loss and lse
// of their exact f32 widening, and dlogits computed in f32 and rounded once, written in place; the
// padding columns are neither read nor written.
TEST(CrossEntropyKernel, HalfLogitsWithPaddedRowsMatchTheirF32Values) {
  Backend& be = backend_for(kCPU);
  const int64_t rows = 5, vocab = 37, ld = 40;
  const Tensor targets = from_vector<int64_t>({3, -100, 36, 0, 20}, {rows});
  Generator gen(21);
  for (DType dt : {DType::bf16, DType::f16}) {
    for (float smoothing : {0.0f, 0.1f}) {
      const std::string what = std::string(dtype_name(dt)) + " smoothing " + std::to_string(smoothing);
      Tensor half = ops::cast(ops::scale(randn({rows, ld}, &gen), 3.0), dt);
      const Tensor padding_before = ops::cast(half.narrow(1, vocab, ld - vocab), DType::f32).contiguous();
      Tensor wide = ops::cast(half, DType::f32).contiguous();
      CrossEntropyArgs a;
      a.rows = rows, a.vocab = vocab, a.ld = ld;
      a.targets = targets.raw(), a.target_dtype = DType::i64, a.label_smoothing = smoothing;
      CrossEntropyArgs f = a;
      a.logits = half.raw(), a.logits_dtype = dt;
      f.logits = wide.raw();
      Tensor loss_h = empty({rows}), lse_h = empty({rows}), loss_f = empty({rows}), lse_f = empty({rows});
      be.cross_entropy_forward(a, loss_h.data<float>(), lse_h.data<float>());
      be.cross_entropy_forward(f, loss_f.data<float>(), lse_f.data<float>());
      EXPECT_EQ(loss_h.to_vector<float>(), loss_f.to_vector<float>()) << what;
      EXPECT_EQ(lse_h.to_vector<float>(), lse_f.to_vector<float>()) << what;

      const Tensor dloss = randn({rows}, &gen);
      Tensor d_f = full({rows, ld}, 7.0);
      be.cross_entropy_backward(f, lse_f.data<float>(), dloss.data<float>(), d_f.raw());
      be.cross_entropy_backward(a, lse_h.data<float>(), dloss.data<float>(), half.raw());  // in place
      const Tensor want = ops::cast(ops::cast(d_f.narrow(1, 0, vocab), dt), DType::f32);
      EXPECT_EQ(ops::cast(half.narrow(1, 0, vocab), DType::f32).to_vector<float>(), want.to_vector<float>()) << what;
      EXPECT_EQ(ops::cast(half.narrow(1, vocab, ld - vocab), DType::f32).to_vector<float>(),
                padding_before.to_vector<float>()) << what;
      for (float v : d_f.narrow(1, vocab, ld - vocab).contiguous().to_vector<float>()) ASSERT_EQ(v, 7.0f) << what;
    }
  }
}

}  // namespace
}  // namespace ld::test
