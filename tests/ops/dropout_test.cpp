#include <gtest/gtest.h>

#include <string>

#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

OpCase identity_case(const std::string& variant, double p, bool training, InputSpec x) {
  OpCase c;
  c.op = "dropout";
  c.variant = variant;
  c.inputs = {std::move(x)};
  c.run = [p, training](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::dropout(t[0], p, training)}; };
  c.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{t[0]}; };
  return c;
}

// With a fixed generator state the mask is a known function of the element index, so the float64
// reference can rebuild it from Philox and the harness can check forward and backward exactly.
OpCase fixed_mask_case(double p, uint64_t seed, uint64_t offset, InputSpec x) {
  OpCase c;
  c.op = "dropout";
  c.variant = "p=" + std::to_string(p) + ", fixed generator state, mask rebuilt from Philox";
  c.inputs = {std::move(x)};
  c.run = [=](const std::vector<Tensor>& t) {
    Generator gen;
    gen.set_state(seed, offset);
    return std::vector<Tensor>{ops::dropout(t[0], p, true, &gen)};
  };
  c.reference = [=](const std::vector<Ref>& t) {
    Ref y = t[0];
    for (int64_t i = 0; i < y.numel(); ++i) {
      uint32_t bits = philox4x32(seed, 0, offset + uint64_t(i / 4))[size_t(i % 4)];
      bool keep = !(uint_to_unit_float(bits) < float(p));
      y.v[size_t(i)] = keep ? y.v[size_t(i)] / (1.0 - p) : 0.0;
    }
    return std::vector<Ref>{y};
  };
  return c;
}

constexpr uint64_t kRandomSeed = 606;

// x of rank 1-4 in a drawn layout: with a drawn p and generator state, and as the identity.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "dropout", 4, [](Rng& rng) {
    InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
    double p = double(draw_int(rng, 1, 9)) / 10;
    uint64_t philox_seed = uint64_t(draw_int(rng, 0, 1 << 30)), offset = uint64_t(draw_int(rng, 0, 100));
    OpCase c = fixed_mask_case(p, philox_seed, offset, x);
    c.variant += " (seed " + std::to_string(philox_seed) + ", offset " + std::to_string(offset) + ")";
    return c;
  });
  add_random_cases(cases, kRandomSeed, "dropout identity", 2, [](Rng& rng) {
    InputSpec x = in_random(rng, draw_small_shape(rng, int(draw_int(rng, 1, 4))));
    return draw_bool(rng) ? identity_case("p=0 is the identity", 0.0, true, x)
                          : identity_case("eval mode is the identity", 0.5, false, x);
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(identity_case("p=0 is the identity", 0.0, true, in({3, 5}, Layout::transposed)));
  cases.push_back(identity_case("eval mode is the identity", 0.5, false, in({4, 1, 3})));
  cases.push_back(fixed_mask_case(0.4, 1234, 5, in({7, 3}, Layout::transposed)));
  cases.push_back(fixed_mask_case(0.1, 99, 0, in({5, 2}, Layout::sliced)));
  add_random_shape_cases(cases);
  return cases;
}

std::vector<float> dropout_of_ones(int64_t n, double p, uint64_t seed) {
  Generator gen(seed);
  return ops::dropout(ones({n}), p, true, &gen).to_vector();
}

TEST(Dropout, MaskDoesNotDependOnTheThreadCount) {
  int saved = num_threads();
  int64_t n = (1 << 17) + 3;  // above the kernel's parallel threshold, not a multiple of 4
  set_num_threads(1);
  std::vector<float> one = dropout_of_ones(n, 0.3, 42);
  set_num_threads(2);
  std::vector<float> two = dropout_of_ones(n, 0.3, 42);
  set_num_threads(saved);
  EXPECT_EQ(one, two);
}

TEST(Dropout, KeepsAboutOneMinusPAndScalesKeptValues) {
  const int64_t n = 1000000;
  for (double p : {0.1, 0.5, 0.9}) {
    std::vector<float> y = dropout_of_ones(n, p, 7);
    float scale = 1.0f / (1.0f - float(p));
    int64_t kept = 0;
    for (float v : y) {
      if (v == 0.0f) continue;
      ++kept;
      ASSERT_FLOAT_EQ(v, scale) << "p=" << p;
    }
    // binomial std is sqrt(p(1-p)/n) <= 5e-4; allow 6 sigma
    EXPECT_NEAR(double(kept) / double(n), 1.0 - p, 3e-3) << "p=" << p;
  }
}

TEST(Dropout, BackwardAppliesTheForwardMask) {
  const int64_t n = 5003;
  const double p = 0.35;
  Generator gen(11);
  Tensor x = uniform({n}, 1.0f, 2.0f, &gen).set_requires_grad(true);  // nonzero: y == 0 exactly where dropped
  Tensor w = randn({n}, &gen);
  Tensor y = ops::dropout(x, p, true, &gen);
  ops::sum(ops::mul(y, w)).backward();
  std::vector<float> yv = y.to_vector(), wv = w.to_vector(), g = x.grad().to_vector();
  float scale = 1.0f / (1.0f - float(p));
  int64_t dropped = 0;
  for (int64_t i = 0; i < n; ++i) {
    bool kept = yv[size_t(i)] != 0.0f;
    dropped += !kept;
    ASSERT_EQ(g[size_t(i)], kept ? wv[size_t(i)] * scale : 0.0f) << "element " << i;
  }
  EXPECT_GT(dropped, 0);
}

TEST(Dropout, SameSeedSameMaskAndNextDrawDiffers) {
  const int64_t n = 4097;
  Generator a(5), b(5);
  Tensor x = ones({n});
  std::vector<float> first_a = ops::dropout(x, 0.5, true, &a).to_vector();
  std::vector<float> first_b = ops::dropout(x, 0.5, true, &b).to_vector();
  EXPECT_EQ(first_a, first_b);
  EXPECT_EQ(a.offset(), uint64_t((n + 3) / 4));  // one Philox counter per 4 elements
  std::vector<float> second_a = ops::dropout(x, 0.5, true, &a).to_vector();
  EXPECT_NE(first_a, second_a);
  Generator c(6);
  EXPECT_NE(first_a, ops::dropout(x, 0.5, true, &c).to_vector());
}

TEST(Dropout, UsesTheDefaultGeneratorWhenNoneIsGiven) {
  Generator& g = default_generator();
  uint64_t saved_seed = g.seed(), saved_offset = g.offset();
  g.set_state(77, 10);
  std::vector<float> from_default = ops::dropout(ones({100}), 0.5).to_vector();
  EXPECT_EQ(g.offset(), 10u + 25u);
  Generator same;
  same.set_state(77, 10);
  EXPECT_EQ(from_default, ops::dropout(ones({100}), 0.5, true, &same).to_vector());
  g.set_state(saved_seed, saved_offset);
}

TEST(Dropout, IdentityCasesReturnTheInputAndDrawNothing) {
  Generator gen(1);
  Tensor x = randn({10}, &gen);
  uint64_t offset = gen.offset();
  EXPECT_EQ(ops::dropout(x, 0.0, true, &gen).impl_ptr(), x.impl_ptr());
  EXPECT_EQ(ops::dropout(x, 0.7, false, &gen).impl_ptr(), x.impl_ptr());
  EXPECT_EQ(gen.offset(), offset);
}

TEST(Dropout, RejectsPOutsideZeroToOne) {
  Tensor x = ones({4});
  for (double p : {1.0, -0.1, 1.5, 0.99999999999}) {
    try {
      ops::dropout(x, p);
      FAIL() << "p=" << p << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("dropout: p must be in [0, 1)"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ops::dropout(x, 1.0, false), Error);  // a bad config fails in eval mode too
}

}  // namespace
}  // namespace ld::test
