// bf16 working weights (ops/working_weights.hpp) and the kernels that write them: Backend::round_bf16
// (to nearest, or stochastically from Philox) and AdamW's fused write. Rounded to nearest, products
// that read the copies give the bits they gave when they rounded the f32 weights themselves;
// stochastic copies are unbiased and a pure function of (master, seed, step, element), which is what
// makes a resume exact; the optimizer keeps every copy current.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"
#include "ops/working_weights.hpp"
#include "test_util.hpp"
#include "train/optimizer.hpp"
#include "train/run_config.hpp"

namespace ld::test {
namespace {

using ops::WorkingWeights;

std::vector<uint16_t> bits_of(const Tensor& bf16) {
  const Tensor c = bf16.contiguous();
  std::vector<uint16_t> out(size_t(c.numel()));
  std::memcpy(out.data(), c.raw(), out.size() * 2);
  return out;
}

std::vector<uint16_t> round_on_cpu(const std::vector<float>& x, uint64_t key, uint64_t counter) {
  std::vector<uint16_t> y(x.size());
  cpu_backend().round_bf16(int64_t(x.size()), x.data(), y.data(), key, counter);
  return y;
}

float bits_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(RoundBf16, ToNearestIsTheOneRoundingFunction) {
  std::vector<float> x = {0.0f, -0.0f, 1.0f, 1.00390625f, 1.01171875f, -3.14159f, 1e-40f, 3.4e38f,
                          INFINITY, -INFINITY, NAN, bits_as_float(0x3f808000u), bits_as_float(0x3f818000u)};
  Generator gen(5);
  const std::vector<float> r = randn({1000}, &gen).to_vector<float>();
  x.insert(x.end(), r.begin(), r.end());
  const std::vector<uint16_t> y = round_on_cpu(x, 0, 0);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], f32_to_bf16(x[i])) << "x = " << x[i];
}

// Element i draws lane i%4 of Philox at (key, counter + i/4), wherever a thread's chunk starts.
TEST(RoundBf16, StochasticIsPhiloxPerElementInAnyChunking) {
  Generator gen(6);
  const std::vector<float> x = randn({100003}, &gen).to_vector<float>();  // several chunks, odd length
  const uint64_t key = 0x1234567890abcdefull, counter = 77;
  const std::vector<uint16_t> y = round_on_cpu(x, key, counter);
  size_t up = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const uint32_t draw = philox4x32(key, 0, counter + i / 4)[i % 4];
    ASSERT_EQ(y[i], f32_to_bf16_stochastic(x[i], draw)) << "element " << i;
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    const uint16_t down = uint16_t(u >> 16);
    ASSERT_TRUE(y[i] == down || y[i] == uint16_t(down + 1)) << "one of the two neighbours, element " << i;
    up += y[i] != down;
  }
  EXPECT_GT(up, x.size() / 3) << "about half of random values round up";
  EXPECT_LT(up, 2 * x.size() / 3);
  EXPECT_NE(round_on_cpu(x, key + 2, counter), y) << "another key, other draws";
  EXPECT_NE(round_on_cpu(x, key, counter + 1), y) << "another counter, other draws";
}

// 1 + 0.375 ulp rounds up with probability 0.375: the expected copy is the value itself.
TEST(RoundBf16, StochasticIsUnbiased) {
  const float ulp = 1.0f / 128.0f;  // bf16's spacing in [1, 2)
  for (float fraction : {0.375f, 0.0625f, 0.9375f}) {
    const std::vector<float> x(200000, 1.0f + fraction * ulp);
    const std::vector<uint16_t> y = round_on_cpu(x, 99, 0);
    double mean = 0;
    for (uint16_t h : y) mean += bf16_to_f32(h);
    mean /= double(y.size());
    // the mean of 200000 Bernoulli(p) steps of one ulp: sd = ulp sqrt(p(1-p)/n) <= 1.1e-3 ulp
    EXPECT_NEAR(mean, 1.0 + fraction * ulp, 5e-3 * ulp) << "fraction " << fraction;
  }
  const std::vector<float> exact(1000, 1.5f);
  for (uint16_t h : round_on_cpu(exact, 99, 0)) ASSERT_EQ(bf16_to_f32(h), 1.5f) << "a bf16 value stays itself";
}

// AdamW writes the copy of the value it just computed, rounded as round_bf16 rounds it.
TEST(RoundBf16, AdamWWritesTheCopyInTheSamePass) {
  for (uint64_t key : {uint64_t(0), uint64_t(12345)}) {
    Generator gen(7);
    std::vector<float> p = randn({5003}, &gen).to_vector<float>(), g = randn({5003}, &gen).to_vector<float>();
    std::vector<float> m(p.size(), 0.1f), v(p.size(), 0.2f), p_plain = p, m2 = m, v2 = v;
    std::vector<uint16_t> copy(p.size());
    AdamWArgs a;
    a.n = int64_t(p.size()), a.param = p.data(), a.grad = g.data(), a.m = m.data(), a.v = v.data();
    a.lr = 1e-2f, a.weight_decay = 0.1f, a.step = 3;
    AdamWArgs plain = a;
    plain.param = p_plain.data(), plain.m = m2.data(), plain.v = v2.data();
    a.param_bf16 = copy.data(), a.rounding_key = key, a.rounding_counter = 11;
    cpu_backend().adamw_step(std::span<const AdamWArgs>(&a, 1));
    cpu_backend().adamw_step(std::span<const AdamWArgs>(&plain, 1));
    EXPECT_EQ(p, p_plain) << "the update itself is unchanged";
    EXPECT_EQ(copy, round_on_cpu(p, key, 11)) << "key " << key;
  }
}

TEST(WorkingWeights, ProductsReadTheCopyAndNearestChangesNoBit) {
  Generator gen(8);
  const Tensor x = randn({6, 16}, &gen), w = randn({24, 16}, &gen), w2 = randn({16, 24}, &gen);
  auto products = [&] {
    ops::AutocastScope bf16(ops::ComputePrecision::bf16);
    return std::vector<Tensor>{ops::linear(x, w), ops::projection(x, w2, ops::WeightLayout::in_out)};
  };
  const std::vector<Tensor> plain = products();
  WorkingWeights working({w, w2}, /*stochastic=*/false, 0);
  EXPECT_EQ(working.copy_bytes(), 0) << "a copy is made when a product first reads it";
  const std::vector<Tensor> nearest = products();
  EXPECT_EQ(working.copy_bytes(), 2 * (24 * 16 + 16 * 24));
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_EQ(max_abs_diff(plain[i], nearest[i]), 0.0f) << "product " << i;
  {
    ops::AutocastScope f32(ops::ComputePrecision::f32);
    EXPECT_EQ(ops::detail::working_weight(w, ops::ComputePrecision::f32), nullptr) << "f32 products read f32";
  }
  // a replaced or moved parameter is another tensor: not found
  EXPECT_EQ(ops::detail::working_weight(w.clone(), ops::ComputePrecision::bf16), nullptr);
}

TEST(WorkingWeights, StochasticCopiesAreWhatTheProductsRead) {
  Generator gen(9);
  const Tensor x = randn({6, 16}, &gen), w = randn({24, 16}, &gen);
  WorkingWeights working({w}, /*stochastic=*/true, 42, /*step=*/3);
  ops::AutocastScope bf16(ops::ComputePrecision::bf16);
  const Tensor y = ops::linear(x, w);
  const Tensor copy = working.copy_of(w);
  const Tensor w_read = copy.to(DType::f32);  // bf16 values: rounding them again changes nothing
  const Tensor y_reference = ops::linear(x, w_read);  // w_read is listed nowhere: the product rounds it
  EXPECT_EQ(max_abs_diff(y, y_reference), 0.0f);
  EXPECT_GT(max_abs_diff(w_read, w.to(DType::bf16).to(DType::f32)), 0.0f) << "some weights rounded the other way";
  WorkingWeights again({w}, true, 42, 3);
  EXPECT_EQ(bits_of(again.copy_of(w)), bits_of(copy)) << "a pure function of master, seed, step and element";
  WorkingWeights other_step({w}, true, 42, 4);
  EXPECT_NE(bits_of(other_step.copy_of(w)), bits_of(copy));
}

// After each step every copy is what a fresh WorkingWeights at that step makes of the masters (so a
// resume, which makes them fresh, continues exactly), with AdamW's fused write, a parameter without
// a gradient that step, and SGD's rounding after its update.
TEST(WorkingWeights, TheOptimizerKeepsEveryCopyCurrent) {
  for (const char* kind : {"adamw", "sgd"}) {
    Generator gen(10);
    Tensor a = randn({8, 12}, &gen), b = randn({12, 4}, &gen), idle = randn({5, 5}, &gen);
    for (Tensor* p : {&a, &b, &idle}) p->set_requires_grad();
    train::TrainSection t;
    t.optimizer = kind;
    t.lr = 0.05;
    train::Optimizer optimizer({{"a", a}, {"b", b}, {"idle", idle}}, t);
    WorkingWeights working({a, b, idle}, /*stochastic=*/true, 7, 0);
    optimizer.set_working_weights(&working);
    const Tensor x = randn({3, 8}, &gen);
    for (int step = 1; step <= 3; ++step) {
      optimizer.zero_grad();
      {
        ops::AutocastScope bf16(ops::ComputePrecision::bf16);
        ops::sum(ops::matmul(ops::matmul(x, a), b)).backward();
        if (step == 1) working.copy_of(idle);  // a copy whose parameter gets no gradient
      }
      const std::vector<uint16_t> before = bits_of(working.copy_of(a));
      optimizer.step();
      EXPECT_NE(bits_of(working.copy_of(a)), before) << kind << " step " << step << ": the copy followed the update";
      WorkingWeights fresh({a, b, idle}, true, 7, optimizer.steps());
      for (const Tensor& p : {a, b, idle})
        EXPECT_EQ(bits_of(working.copy_of(p)), bits_of(fresh.copy_of(p))) << kind << " step " << step;
    }
  }
}

}  // namespace
}  // namespace ld::test
