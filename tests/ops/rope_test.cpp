#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

// x [B, T, H, D] rotated pairwise by pos * theta^(-2i/rd), all in float64.
Ref ref_rope(const Ref& x, const Ref& pos, const ops::RopeOptions& o) {
  int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  int64_t rd = o.rotary_dim == 0 ? D : o.rotary_dim, half = rd / 2;
  Ref y = x;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      double p = pos.dim() == 2 ? pos({b, t}) : pos({t});
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          double angle = p * std::pow(o.theta, -2.0 * double(i) / double(rd));
          int64_t lo = o.layout == RopeLayout::interleaved ? 2 * i : i;
          int64_t hi = o.layout == RopeLayout::interleaved ? 2 * i + 1 : i + half;
          double x0 = x({b, t, h, lo}), x1 = x({b, t, h, hi});
          y({b, t, h, lo}) = x0 * std::cos(angle) - x1 * std::sin(angle);
          y({b, t, h, hi}) = x0 * std::sin(angle) + x1 * std::cos(angle);
        }
    }
  return y;
}

OpCase rope_case(const std::string& variant, InputSpec x, InputSpec pos, ops::RopeOptions o) {
  OpCase c;
  c.op = "rope";
  c.variant = variant;
  c.inputs = {std::move(x), std::move(pos)};
  c.run = [o](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::rope(t[0], t[1], o)}; };
  c.reference = [o](const std::vector<Ref>& t) { return std::vector<Ref>{ref_rope(t[0], t[1], o)}; };
  return c;
}

ops::RopeOptions options(RopeLayout layout, int64_t rotary_dim = 0, double theta = 10000.0) {
  ops::RopeOptions o;
  o.layout = layout;
  o.rotary_dim = rotary_dim;
  o.theta = theta;
  return o;
}

constexpr uint64_t kRandomSeed = 1313;

// x [B, T, H, D] with B 1-2, T 1-9, H 1-3 and D even in 2..8, in a drawn layout; rotary_dim even
// <= D (0, the whole head, a third of the time); the layout, theta and [T] or [B, T] positions drawn.
OpCase random_rope(Rng& rng) {
  int64_t b = draw_int(rng, 1, 2), t = draw_int(rng, 1, 9), h = draw_int(rng, 1, 3), d = 2 * draw_int(rng, 1, 4);
  int64_t rotary_dim = draw_bool(rng, 1.0 / 3) ? 0 : 2 * draw_int(rng, 1, d / 2);
  RopeLayout layout = draw_bool(rng) ? RopeLayout::half : RopeLayout::interleaved;
  double theta = draw_one(rng, std::vector<double>{10000.0, 500000.0});
  Shape pos_shape = draw_bool(rng) ? Shape{t} : Shape{b, t};
  int64_t max_pos = draw_one(rng, std::vector<int64_t>{16, 4096});
  std::string variant = std::string(layout == RopeLayout::half ? "half" : "interleaved") + ", rotary_dim " +
                        std::to_string(rotary_dim) + ", theta " + num_str(theta);
  return rope_case(variant, in_random(rng, {b, t, h, d}), index_input(pos_shape, 0, max_pos),
                   options(layout, rotary_dim, theta));
}

LD_OP_CASES {
  std::vector<OpCase> cases{
      rope_case("half (HF LLaMA)", in({2, 5, 3, 8}), index_input({5}, 0, 64), options(RopeLayout::half)),
      rope_case("interleaved (llama2.c)", in({2, 5, 3, 8}), index_input({5}, 0, 64), options(RopeLayout::interleaved)),
      rope_case("half, partial rotary_dim", in({1, 4, 2, 10}), index_input({4}, 0, 64), options(RopeLayout::half, 4)),
      rope_case("interleaved, partial rotary_dim", in({1, 4, 2, 6}), index_input({4}, 0, 64),
                options(RopeLayout::interleaved, 2)),
      rope_case("[B, T] positions, theta 500000", in({3, 4, 2, 6}), index_input({3, 4}, 0, 4096),
                options(RopeLayout::half, 0, 500000.0)),
      rope_case("large positions, transposed view", in({2, 3, 4, 4}, Layout::transposed),
                index_input({3}, 100000, 200000), options(RopeLayout::interleaved)),
  };
  add_random_cases(cases, kRandomSeed, "rope", 5, random_rope);
  return cases;
}

TEST(Rope, RejectsBadArguments) {
  Tensor x = randn({1, 4, 2, 6}), pos = arange(4);
  EXPECT_THROW(ops::rope(randn({4, 2, 6}), pos), Error);
  EXPECT_THROW(ops::rope(x, arange(5)), Error);
  EXPECT_THROW(ops::rope(x, pos, options(RopeLayout::half, 3)), Error);
  EXPECT_THROW(ops::rope(x, pos, options(RopeLayout::half, 8)), Error);
  EXPECT_THROW(ops::rope(x, pos.to(DType::f32)), Error);
}

TEST(Rope, InverseUndoesTheRotation) {
  Tensor x = randn({2, 7, 3, 16}), pos = arange(7);
  Tensor y = ops::rope(x, pos);
  RopeArgs a;
  a.batch = 2, a.seq = 7, a.heads = 3, a.head_dim = 16, a.rotary_dim = 16;
  a.positions = pos.data<int64_t>();
  a.inverse = true;
  Tensor back = empty(y.shape());
  y.backend().rope(a, y.data<float>(), back.data<float>());
  std::vector<float> xv = x.to_vector<float>(), bv = back.to_vector<float>();
  for (size_t i = 0; i < xv.size(); ++i) EXPECT_NEAR(bv[i], xv[i], 1e-5);
}

}  // namespace
}  // namespace ld::test
