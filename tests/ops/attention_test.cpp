#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "backend/cpu/cpu_backend.hpp"
#include "ops/op_harness.hpp"
#include "test_util.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

enum class MaskKind { none, additive, boolean };

struct AttentionSetup {
  bool causal = true;
  std::optional<double> scale;
  MaskKind mask = MaskKind::none;
  bool bthd = false;  // inputs are [B, T, H, D] and reach the op as transpose(1, 2) views
};

// Value of a mask broadcast to [B, H, Tq, Tk] at (b, h, i, j).
double mask_at(const Ref& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  int64_t idx[4] = {b, h, i, j}, off = 0;
  size_t lead = 4 - m.shape.size();
  for (size_t d = 0; d < m.shape.size(); ++d) off = off * m.shape[d] + (m.shape[d] == 1 ? 0 : idx[lead + d]);
  return m.v[size_t(off)];
}

// Scores, softmax and output in float64 with the full Tq x Tk matrix.
struct RefAttention {
  Ref out;  // [B, Hq, Tq, D]
  Ref p;    // [B, Hq, Tq, Tk]
};

RefAttention ref_attention(const Ref& q, const Ref& k, const Ref& v, const Ref* mask, const AttentionSetup& s) {
  int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  double scale = s.scale.value_or(1.0 / std::sqrt(double(D)));
  RefAttention r{Ref({B, Hq, Tq, D}), Ref({B, Hq, Tq, Tk})};
  std::vector<double> sc(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        int64_t hk = h / (Hq / Hkv);
        double mx = -kInf;
        for (int64_t j = 0; j < Tk; ++j) {
          double x = 0;
          for (int64_t d = 0; d < D; ++d) x += q({b, h, i, d}) * k({b, hk, j, d});
          x *= scale;
          if (mask && s.mask == MaskKind::additive) x += mask_at(*mask, b, h, i, j);
          if (mask && s.mask == MaskKind::boolean && mask_at(*mask, b, h, i, j) == 0) x = -kInf;
          if (s.causal && j > i + Tk - Tq) x = -kInf;
          sc[size_t(j)] = x;
          mx = std::max(mx, x);
        }
        if (mx == -kInf) continue;  // sees no key: output 0
        double sum = 0;
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < Tk; ++j) {
          double p = sc[size_t(j)] / sum;
          r.p({b, h, i, j}) = p;
          for (int64_t d = 0; d < D; ++d) r.out({b, h, i, d}) += p * v({b, hk, j, d});
        }
      }
  return r;
}

OpCase attention_case(const std::string& variant, Shape qs, Shape ks, AttentionSetup s, Shape mask_shape = {},
                      Layout q_layout = Layout::contiguous) {
  OpCase c;
  c.op = "attention";
  c.variant = variant;
  auto as_bthd = [&](Shape x) { return s.bthd ? Shape{x[0], x[2], x[1], x[3]} : x; };
  c.inputs = {in(as_bthd(qs), q_layout), in(as_bthd(ks)), in(as_bthd(ks))};
  if (s.mask == MaskKind::additive) c.inputs.push_back(no_grad(in(mask_shape)));
  if (s.mask == MaskKind::boolean) c.inputs.push_back(mask_input(mask_shape, 0.7));
  c.run = [s](const std::vector<Tensor>& t) {
    ops::AttentionOptions o;
    o.causal = s.causal;
    o.scale = s.scale;
    if (s.mask != MaskKind::none) o.mask = t[3];
    if (s.bthd) return std::vector<Tensor>{ops::attention(t[0].transpose(1, 2), t[1].transpose(1, 2), t[2].transpose(1, 2), o)};
    return std::vector<Tensor>{ops::attention(t[0], t[1], t[2], o)};
  };
  c.reference = [s](const std::vector<Ref>& t) {
    auto view = [&](const Ref& x) { return s.bthd ? ref_permute(x, {0, 2, 1, 3}) : x; };
    const Ref* mask = s.mask == MaskKind::none ? nullptr : &t[3];
    return std::vector<Ref>{ref_attention(view(t[0]), view(t[1]), view(t[2]), mask, s).out};
  };
  c.forward_rtol = 2e-5, c.forward_atol = 2e-5;
  return c;
}

AttentionSetup non_causal() {
  AttentionSetup s;
  s.causal = false;
  return s;
}

constexpr uint64_t kRandomSeed = 1212;

// B 1-2, Hkv 1-2, Hq = Hkv * (1-3), Tq and Tk 1-9 (Tq <= Tk when causal), D 1-8; drawn too: a
// custom scale, an additive or boolean mask broadcast from a partner of [B, Hq, Tq, Tk], the
// [B, T, H, D] view layout and q's layout.
OpCase random_attention(Rng& rng) {
  int64_t b = draw_int(rng, 1, 2), hkv = draw_int(rng, 1, 2), hq = hkv * draw_int(rng, 1, 3), d = draw_int(rng, 1, 8);
  AttentionSetup s;
  s.causal = draw_bool(rng);
  int64_t tk = draw_int(rng, 1, 9), tq = s.causal ? draw_int(rng, 1, tk) : draw_int(rng, 1, 9);
  std::string variant = std::string(s.causal ? "causal" : "non-causal") + ", B " + std::to_string(b) + " Hq " +
                        std::to_string(hq) + " Hkv " + std::to_string(hkv) + " Tq " + std::to_string(tq) + " Tk " +
                        std::to_string(tk) + " D " + std::to_string(d);
  if (draw_bool(rng, 0.25)) {
    s.scale = draw_one(rng, std::vector<double>{0.3, 1.0, 2.0});
    variant += ", scale " + num_str(*s.scale);
  }
  s.mask = draw_one(rng, std::vector<MaskKind>{MaskKind::none, MaskKind::additive, MaskKind::boolean});
  Shape mask_shape;
  if (s.mask != MaskKind::none) {
    mask_shape = broadcast_partner(rng, {b, hq, tq, tk});
    variant += s.mask == MaskKind::additive ? ", additive" : ", boolean";
    variant += " mask " + shape_str(mask_shape);
  }
  s.bthd = draw_bool(rng, 0.25);
  if (s.bthd) variant += ", [B, T, H, D] views";
  Layout q_layout = draw_layout(rng, 4);
  return attention_case(variant, {b, hq, tq, d}, {b, hkv, tk, d}, s, mask_shape, q_layout);
}

void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "attention", 8, random_attention);
}

LD_OP_CASES {
  AttentionSetup causal;
  AttentionSetup bthd;
  bthd.bthd = true;
  AttentionSetup scaled = non_causal();
  scaled.scale = 0.3;
  AttentionSetup additive = non_causal();
  additive.mask = MaskKind::additive;
  AttentionSetup additive_causal;
  additive_causal.mask = MaskKind::additive;
  AttentionSetup boolean;
  boolean.mask = MaskKind::boolean;
  AttentionSetup boolean_bthd = non_causal();
  boolean_bthd.mask = MaskKind::boolean;
  boolean_bthd.bthd = true;
  std::vector<OpCase> cases{
      attention_case("causal, odd sizes", {2, 2, 5, 3}, {2, 2, 5, 3}, causal),
      attention_case("non-causal, Tq != Tk", {1, 3, 4, 5}, {1, 3, 7, 5}, non_causal()),
      attention_case("decode: Tq = 1, causal", {2, 2, 1, 4}, {2, 2, 7, 4}, causal),
      attention_case("causal, Tq < Tk (aligned at the end)", {1, 2, 3, 5}, {1, 2, 7, 5}, causal),
      attention_case("causal, Tq > Tk (first rows see nothing)", {1, 1, 6, 3}, {1, 1, 4, 3}, causal),
      attention_case("GQA Hq=4 Hkv=2, causal", {1, 4, 5, 3}, {1, 2, 5, 3}, causal),
      attention_case("MQA Hq=4 Hkv=1, non-causal, custom scale", {2, 4, 3, 5}, {2, 1, 6, 5}, scaled),
      attention_case("additive mask [Tq, Tk]", {1, 2, 4, 3}, {1, 2, 6, 3}, additive, {4, 6}),
      attention_case("additive mask [Tq, 1] (broadcast along keys)", {1, 2, 4, 3}, {1, 2, 5, 3}, additive, {4, 1}),
      attention_case("additive mask [B, 1, 1, Tk] + causal", {2, 2, 5, 3}, {2, 2, 5, 3}, additive_causal, {2, 1, 1, 5}),
      attention_case("boolean mask [B, 1, Tq, Tk] + causal", {2, 2, 5, 3}, {2, 2, 5, 3}, boolean, {2, 1, 5, 5}),
      attention_case("[B, T, H, D] views, causal", {2, 3, 7, 5}, {2, 3, 7, 5}, bthd),
      attention_case("[B, T, H, D] views, GQA, boolean mask [Tk]", {1, 4, 5, 3}, {1, 2, 6, 3}, boolean_bthd, {6}),
      attention_case("q with a transposed last dim", {1, 2, 5, 4}, {1, 2, 5, 4}, causal, {}, Layout::transposed),
      attention_case("several tiles, causal, GQA (T=150)", {1, 2, 150, 2}, {1, 1, 150, 2}, causal),
      attention_case("several tiles, non-causal, Tq < Tk", {1, 1, 70, 3}, {1, 1, 140, 3}, non_causal()),
      attention_case("several tiles, whole heads, [B, T, H, D] views", {2, 2, 80, 2}, {2, 2, 80, 2}, bthd),
  };
  add_random_shape_cases(cases);
  return cases;
}

// --- larger head dims against float64 gradients computed in closed form (finite differences
// would be too slow at these sizes)

struct Grads {
  Ref dq, dk, dv;
};

Grads ref_attention_grads(const Ref& q, const Ref& k, const Ref& v, const Ref& dout, const AttentionSetup& s) {
  RefAttention f = ref_attention(q, k, v, nullptr, s);
  int64_t B = q.size(0), Hq = q.size(1), Tq = q.size(2), D = q.size(3), Hkv = k.size(1), Tk = k.size(2);
  double scale = s.scale.value_or(1.0 / std::sqrt(double(D)));
  Grads g{Ref(q.shape), Ref(k.shape), Ref(v.shape)};
  std::vector<double> dp(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        int64_t hk = h / (Hq / Hkv);
        double dot = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          double x = 0;
          for (int64_t d = 0; d < D; ++d) x += dout({b, h, i, d}) * v({b, hk, j, d});
          dp[size_t(j)] = x;
          dot += f.p({b, h, i, j}) * x;
        }
        for (int64_t j = 0; j < Tk; ++j) {
          double p = f.p({b, h, i, j}), ds = p * (dp[size_t(j)] - dot) * scale;
          for (int64_t d = 0; d < D; ++d) {
            g.dv({b, hk, j, d}) += p * dout({b, h, i, d});
            g.dq({b, h, i, d}) += ds * k({b, hk, j, d});
            g.dk({b, hk, j, d}) += ds * q({b, h, i, d});
          }
        }
      }
  return g;
}

Ref to_ref(const Tensor& t) {
  Ref r(t.shape());
  std::vector<float> v = t.contiguous().to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i) r.v[i] = v[i];
  return r;
}

void expect_near_ref(const Tensor& got, const Ref& want, double tol, const char* what) {
  ASSERT_EQ(got.shape(), want.shape) << what;
  std::vector<float> g = got.contiguous().to_vector<float>();
  int bad = 0;
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::fabs(g[i] - want.v[i]) <= tol * (1 + std::fabs(want.v[i]))) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << g[i] << ", want " << want.v[i];
}

// Runs forward and backward with a random upstream gradient and compares everything with float64.
void check_against_closed_form(Shape qs, Shape ks, bool causal, int threads) {
  int saved_threads = num_threads();
  set_num_threads(threads);
  Tensor q = randn(qs).set_requires_grad(true), k = randn(ks).set_requires_grad(true),
         v = randn(ks).set_requires_grad(true);
  Shape os = qs;
  Tensor dout = randn(os);
  ops::AttentionOptions o;
  o.causal = causal;
  Tensor out = ops::attention(q, k, v, o);
  out.backward(dout);
  set_num_threads(saved_threads);

  AttentionSetup s;
  s.causal = causal;
  Ref rq = to_ref(q), rk = to_ref(k), rv = to_ref(v), rdo = to_ref(dout);
  expect_near_ref(out, ref_attention(rq, rk, rv, nullptr, s).out, 1e-5, "out");
  Grads g = ref_attention_grads(rq, rk, rv, rdo, s);
  expect_near_ref(q.grad(), g.dq, 1e-4, "dq");
  expect_near_ref(k.grad(), g.dk, 1e-4, "dk");
  expect_near_ref(v.grad(), g.dv, 1e-4, "dv");
}

TEST(Attention, HeadDim64SeveralTilesOneThread) { check_against_closed_form({2, 2, 130, 64}, {2, 2, 130, 64}, true, 1); }
TEST(Attention, HeadDim64GqaByKeyAndQueryTiles) { check_against_closed_form({1, 4, 100, 64}, {1, 1, 200, 64}, true, 2); }
TEST(Attention, HeadDim80WholeHeads) { check_against_closed_form({2, 2, 97, 80}, {2, 2, 97, 80}, false, 2); }
TEST(Attention, HeadDim128Decode) { check_against_closed_form({1, 8, 1, 128}, {1, 2, 150, 128}, true, 2); }

TEST(Attention, RejectsBadShapesWithTheirNames) {
  Tensor q = randn({1, 4, 5, 8}), k = randn({1, 2, 5, 8});
  EXPECT_NE(error_message([&] { ops::attention(randn({4, 5, 8}), k, k); }).find("4-D"), std::string::npos);
  EXPECT_NE(error_message([&] { ops::attention(q, randn({1, 2, 5, 7}), randn({1, 2, 5, 7})); }).find("[1, 2, 5, 7]"),
            std::string::npos);
  EXPECT_NE(error_message([&] { ops::attention(q, randn({1, 3, 5, 8}), randn({1, 3, 5, 8})); }).find("multiple"),
            std::string::npos);
  EXPECT_NE(error_message([&] { ops::attention(q, k, randn({1, 2, 6, 8})); }).find("same shape"), std::string::npos);
  EXPECT_NE(error_message([&] { ops::attention(q, randn({2, 2, 5, 8}), randn({2, 2, 5, 8})); }).find("batch"),
            std::string::npos);
  ops::AttentionOptions o;
  o.mask = zeros({3, 5});
  EXPECT_NE(error_message([&] { ops::attention(q, k, k, o); }).find("does not broadcast"), std::string::npos);
  o.mask = zeros({5, 5}, DType::i64);
  EXPECT_NE(error_message([&] { ops::attention(q, k, k, o); }).find("mask must be f32"), std::string::npos);
}

TEST(Attention, FullyMaskedRowGivesZeroAndFiniteGradients) {
  Tensor q = randn({1, 2, 4, 8}).set_requires_grad(true), k = randn({1, 2, 6, 8}).set_requires_grad(true),
         v = randn({1, 2, 6, 8}).set_requires_grad(true);
  std::vector<uint8_t> keep(4 * 6, 1);
  for (int j = 0; j < 6; ++j) keep[size_t(2 * 6 + j)] = 0;  // query 2 sees nothing
  ops::AttentionOptions o;
  o.causal = false;
  o.mask = from_vector(keep, {4, 6});
  Tensor out = ops::attention(q, k, v, o);
  ops::sum(ops::mul(out, randn(out.shape()))).backward();
  std::vector<float> ov = out.contiguous().to_vector<float>();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t d = 0; d < 8; ++d) EXPECT_EQ(ov[size_t((h * 4 + 2) * 8 + d)], 0.0f);
  for (const Tensor& t : {out, q.grad(), k.grad(), v.grad()})
    for (float x : t.contiguous().to_vector<float>()) ASSERT_TRUE(std::isfinite(x));
  std::vector<float> dq = q.grad().to_vector<float>();
  for (int64_t d = 0; d < 8; ++d) EXPECT_EQ(dq[size_t(2 * 8 + d)], 0.0f);

  // An additive -inf row, and causal rows before the first key, behave the same.
  Tensor minf = zeros({4, 6});
  minf.narrow(0, 1, 1).fill_(-std::numeric_limits<double>::infinity());
  o.mask = minf;
  Tensor out2 = ops::attention(q, k, v, o);
  for (float x : out2.contiguous().to_vector<float>()) ASSERT_TRUE(std::isfinite(x));
  Tensor kv3 = randn({1, 1, 3, 8});
  Tensor out3 = ops::attention(randn({1, 1, 9, 8}), kv3, kv3);
  std::vector<float> o3 = out3.contiguous().to_vector<float>();
  for (size_t i = 0; i < 6 * 8; ++i) EXPECT_EQ(o3[i], 0.0f);
}

// A model reads the output as out.transpose(1, 2).reshape({B, T, H * D}); the gradient then comes
// back with the output's own strides, which the backward reads without a copy.
TEST(Attention, GradientThroughTheBTHDViewMatchesTheDirectOne) {
  Tensor q = randn({2, 3, 70, 16}).set_requires_grad(true), k = randn({2, 3, 70, 16}).set_requires_grad(true),
         v = randn({2, 3, 70, 16}).set_requires_grad(true), w = randn({2, 3, 70, 16});
  ops::sum(ops::mul(ops::attention(q, k, v), w)).backward();
  std::vector<float> dq = q.grad().to_vector<float>(), dk = k.grad().to_vector<float>(),
                     dv = v.grad().to_vector<float>();
  q.zero_grad(), k.zero_grad(), v.zero_grad();
  Tensor merged = ops::attention(q, k, v).transpose(1, 2).reshape({2, 70, 48});
  ops::sum(ops::mul(merged, w.transpose(1, 2).reshape({2, 70, 48}))).backward();
  auto expect_same = [](const std::vector<float>& want, const Tensor& got) {
    std::vector<float> g = got.contiguous().to_vector<float>();
    ASSERT_EQ(g.size(), want.size());
    for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], want[i], 1e-5f * (1 + std::fabs(want[i]))) << i;
  };
  expect_same(dq, q.grad());
  expect_same(dk, k.grad());
  expect_same(dv, v.grad());
}

TEST(Attention, OutputIsATransposedViewOfBTHD) {
  Tensor out = ops::attention(randn({2, 3, 5, 4}), randn({2, 3, 5, 4}), randn({2, 3, 5, 4}));
  EXPECT_EQ(out.shape(), (Shape{2, 3, 5, 4}));
  EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
}

}  // namespace
}  // namespace ld::test
