// A frozen weight (a LoRA base) times a trainable activation: the backward must still give the exact
// input gradient, and the node must not keep the activation alive (only the weight gradient reads
// it). Observed through the caching allocator's bytes in use after the forward. The converse (a
// trainable weight, an activation that needs no gradient) must keep the activation and give the
// exact weight gradient.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "core/allocator.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace ld {
namespace {

constexpr int64_t kRows = 128, kIn = 256, kOut = 16;  // the activation [rows, in] dwarfs y [rows, out]
constexpr double kScale = 2.0;

Tensor random(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return normal(shape, 0.0f, 1.0f, &gen);
}

size_t in_use() { return CachingHostAllocator::instance().stats().bytes_in_use; }

// y = product(kScale * x, weight); returns the bytes the graph holds beyond y once the forward's
// temporaries are gone, and runs sum(y).backward().
using Product = std::function<Tensor(const Tensor& h, const Tensor& weight)>;
size_t held_beyond_output(const Product& product, const Tensor& x, const Tensor& weight) {
  const size_t before = in_use();
  Tensor y;
  {
    Tensor h = ops::scale(x, kScale);  // a fresh activation only the graph can keep
    y = product(h, weight);
  }
  const size_t held = in_use() - before - y.numel() * sizeof(float);
  ops::sum(y).backward();
  return held;
}

// Column sums of a [rows, cols] tensor, in double.
std::vector<double> column_sums(const Tensor& t) {
  const std::vector<float> v = t.contiguous().to_vector<float>();
  const int64_t cols = t.size(1);
  std::vector<double> s(size_t(cols), 0.0);
  for (size_t i = 0; i < v.size(); ++i) s[i % size_t(cols)] += v[i];
  return s;
}

// d sum(h W^T) / dx = kScale * (column sums of W^T), the same for every row; for h W (W [in, out])
// the row sums of W.
void expect_input_grad(const Tensor& x, const std::vector<double>& per_input) {
  ASSERT_TRUE(x.grad().defined());
  const std::vector<float> g = x.grad().to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], kScale * per_input[i % size_t(kIn)], 1e-4) << "x.grad element " << i;
}

// d sum(h W^T) / dW[o, i] = kScale * sum over rows of x[:, i], for every o.
void expect_weight_grad(const Tensor& weight, const std::vector<double>& x_column_sums, bool w_in_out) {
  ASSERT_TRUE(weight.grad().defined());
  const std::vector<float> g = weight.grad().to_vector<float>();
  for (size_t e = 0; e < g.size(); ++e) {
    const size_t i = w_in_out ? e / size_t(kOut) : e % size_t(kIn);
    ASSERT_NEAR(g[e], kScale * x_column_sums[i], 1e-3) << "weight.grad element " << e;
  }
}

const Product kLinear = [](const Tensor& h, const Tensor& w) { return ops::linear(h, w, Tensor()); };
const Product kMatmul = [](const Tensor& h, const Tensor& w) { return ops::matmul(h, w); };

TEST(FrozenWeight, LinearKeepsNoActivationAndGivesTheInputGradient) {
  Tensor x = random({kRows, kIn}, 1).set_requires_grad();
  Tensor w = random({kOut, kIn}, 2);  // frozen
  const size_t held = held_beyond_output(kLinear, x, w);
  EXPECT_LT(held, size_t(kRows * kIn) * sizeof(float)) << "the frozen linear kept its input";
  EXPECT_FALSE(w.grad().defined());
  // d/dx_i of sum_o (h W^T)_o = kScale * sum_o W[o, i]
  expect_input_grad(x, column_sums(w));
}

TEST(FrozenWeight, MatmulKeepsNoActivationAndGivesTheInputGradient) {
  Tensor x = random({kRows, kIn}, 3).set_requires_grad();
  Tensor w = random({kIn, kOut}, 4);  // frozen, Conv1D's [in, out] layout
  const size_t held = held_beyond_output(kMatmul, x, w);
  EXPECT_LT(held, size_t(kRows * kIn) * sizeof(float)) << "the frozen matmul kept its input";
  EXPECT_FALSE(w.grad().defined());
  expect_input_grad(x, column_sums(w.transpose(0, 1)));
}

TEST(FrozenWeight, TrainableWeightKeepsTheActivationAndGivesTheWeightGradient) {
  for (const bool w_in_out : {false, true}) {
    SCOPED_TRACE(w_in_out ? "matmul" : "linear");
    Tensor x = random({kRows, kIn}, 5);  // needs no gradient
    Tensor w = (w_in_out ? random({kIn, kOut}, 6) : random({kOut, kIn}, 6)).set_requires_grad();
    const size_t held = held_beyond_output(w_in_out ? kMatmul : kLinear, x, w);
    EXPECT_GE(held, size_t(kRows * kIn) * sizeof(float)) << "dW needs the input: it must be kept";
    EXPECT_FALSE(x.grad().defined());
    expect_weight_grad(w, column_sums(x), w_in_out);
  }
}

}  // namespace
}  // namespace ld
