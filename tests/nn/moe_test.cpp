// nn::MoeFfn (Mixtral's block_sparse_moe): the forward against a naive float64 reference that routes
// one token at a time (with and without a capacity limit), gradients against central finite
// differences of that reference, the auxiliary losses against hand-computed examples, the routing
// rule on explicit choices, and config validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/moe.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld::test {
namespace {

using nn::MixtralExpert;
using nn::MoeConfig;
using nn::MoeFfn;

std::shared_ptr<MoeFfn> make_moe(int64_t dim, int64_t hidden, const MoeConfig& config, uint64_t seed) {
  Generator gen(seed);
  auto expert = [dim, hidden](Generator& g) { return std::make_shared<MixtralExpert>(dim, hidden, g); };
  return std::make_shared<MoeFfn>(dim, config, expert, gen);
}

MixtralExpert& mixtral_expert(const MoeFfn& moe, int64_t e) { return dynamic_cast<MixtralExpert&>(moe.expert(e)); }

std::vector<double> to_double(const Tensor& t) {
  std::vector<float> f = t.contiguous().to_vector<float>();
  return {f.begin(), f.end()};
}

// --- the naive float64 reference: one token at a time, written from the header comment

struct RefExpert {
  std::vector<double> w1, w2, w3;  // [H, C], [C, H], [H, C]
};

struct RefMoe {
  int64_t dim = 0, hidden = 0, experts = 0;
  MoeConfig config;
  std::vector<double> gate;  // [E, C]
  std::vector<RefExpert> ffn;
};

RefMoe reference_of(const MoeFfn& moe, int64_t dim, int64_t hidden) {
  RefMoe r;
  r.dim = dim, r.hidden = hidden, r.experts = moe.config().num_experts, r.config = moe.config();
  r.gate = to_double(moe.gate->weight);
  for (int64_t e = 0; e < r.experts; ++e) {
    const MixtralExpert& ex = mixtral_expert(moe, e);
    r.ffn.push_back({to_double(ex.w1->weight), to_double(ex.w2->weight), to_double(ex.w3->weight)});
  }
  return r;
}

// w x for w [out, in], x [in]
std::vector<double> matvec(const std::vector<double>& w, const double* x, int64_t out, int64_t in) {
  std::vector<double> y(static_cast<size_t>(out), 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) y[size_t(o)] += w[size_t(o * in + i)] * x[i];
  return y;
}

std::vector<double> expert_forward(const RefMoe& m, int64_t e, const double* x) {
  const RefExpert& ex = m.ffn[size_t(e)];
  std::vector<double> a = matvec(ex.w1, x, m.hidden, m.dim), b = matvec(ex.w3, x, m.hidden, m.dim);
  for (size_t h = 0; h < a.size(); ++h) a[h] = a[h] / (1.0 + std::exp(-a[h])) * b[h];  // silu(w1 x) * w3 x
  return matvec(ex.w2, a.data(), m.dim, m.hidden);
}

struct RefOut {
  std::vector<double> y;             // [N, C]
  std::vector<int64_t> choices;      // [N, K]
  std::vector<uint8_t> kept;         // [N, K]
  int64_t dropped = 0;
  double load_balancing = 0, z = 0;  // Switch / HF top-k and ST-MoE z-loss
};

RefOut naive_moe(const RefMoe& m, const std::vector<double>& x, int64_t N) {
  const int64_t C = m.dim, E = m.experts, K = m.config.top_k;
  RefOut out;
  out.y.assign(size_t(N * C), 0.0);
  std::vector<double> probs(size_t(N * E)), weights(size_t(N * K));
  std::vector<double> mean_prob(size_t(E), 0.0), routed(size_t(E), 0.0);
  for (int64_t t = 0; t < N; ++t) {
    std::vector<double> logits = matvec(m.gate, &x[size_t(t * C)], E, C);
    double mx = *std::max_element(logits.begin(), logits.end()), z = 0;
    for (double l : logits) z += std::exp(l - mx);
    double lse = mx + std::log(z);
    out.z += lse * lse / double(N);
    for (int64_t e = 0; e < E; ++e) probs[size_t(t * E + e)] = std::exp(logits[size_t(e)] - lse);
    std::vector<int64_t> order(static_cast<size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return probs[size_t(t * E + a)] > probs[size_t(t * E + b)]; });
    double total = 0;
    for (int64_t r = 0; r < K; ++r) total += probs[size_t(t * E + order[size_t(r)])];
    for (int64_t r = 0; r < K; ++r) {
      out.choices.push_back(order[size_t(r)]);
      weights[size_t(t * K + r)] = probs[size_t(t * E + order[size_t(r)])] / total;
      routed[size_t(order[size_t(r)])] += 1.0 / double(N);
    }
    for (int64_t e = 0; e < E; ++e) mean_prob[size_t(e)] += probs[size_t(t * E + e)] / double(N);
  }
  for (int64_t e = 0; e < E; ++e) out.load_balancing += double(E) * routed[size_t(e)] * mean_prob[size_t(e)];
  // Capacity: first choices of every token, in token order, then second choices...
  int64_t capacity = m.config.capacity_factor == 0
                         ? N * K
                         : int64_t(std::ceil(m.config.capacity_factor * double(N * K) / double(E)));
  std::vector<int64_t> load(static_cast<size_t>(E), 0);
  out.kept.assign(size_t(N * K), 0);
  for (int64_t r = 0; r < K; ++r)
    for (int64_t t = 0; t < N; ++t) {
      int64_t e = out.choices[size_t(t * K + r)];
      if (load[size_t(e)] < capacity) {
        ++load[size_t(e)];
        out.kept[size_t(t * K + r)] = 1;
      } else {
        ++out.dropped;
      }
    }
  for (int64_t t = 0; t < N; ++t)
    for (int64_t r = 0; r < K; ++r) {
      if (!out.kept[size_t(t * K + r)]) continue;  // dropped: contributes nothing, no renormalisation
      std::vector<double> ye = expert_forward(m, out.choices[size_t(t * K + r)], &x[size_t(t * C)]);
      for (int64_t c = 0; c < C; ++c) out.y[size_t(t * C + c)] += weights[size_t(t * K + r)] * ye[size_t(c)];
    }
  return out;
}

// A router with weights large enough that the top-k choices are far from ties (and stay put under
// finite-difference steps), experts with O(1) outputs.
void scale_weights(MoeFfn& moe, double gate_std, double expert_std, uint64_t seed) {
  Generator gen(seed);
  moe.gate->weight.copy_(ops::scale(randn(moe.gate->weight.shape(), &gen), gate_std));
  for (int64_t e = 0; e < moe.config().num_experts; ++e) {
    MixtralExpert& ex = mixtral_expert(moe, e);
    for (auto* lin : {ex.w1.get(), ex.w2.get(), ex.w3.get()})
      lin->weight.copy_(ops::scale(randn(lin->weight.shape(), &gen), expert_std));
  }
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double atol, double rtol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], atol + rtol * std::abs(want[i])) << what << " at " << i;
}

MoeConfig config_of(int64_t experts, int64_t top_k, double capacity, double aux = 0.0, double z = 0.0) {
  MoeConfig c;
  c.num_experts = experts;
  c.top_k = top_k;
  c.aux_loss_coef = aux;
  c.z_loss_coef = z;
  c.capacity_factor = capacity;
  return c;
}

TEST(Moe, ParametersHaveMixtralNames) {
  auto moe = make_moe(6, 10, config_of(3, 2, 0.0), 1);
  std::vector<std::string> names;
  for (const auto& [name, p] : moe->named_parameters()) names.push_back(name + shape_str(p.shape()));
  EXPECT_EQ(names, (std::vector<std::string>{"gate.weight[3, 6]", "experts.0.w1.weight[10, 6]", "experts.0.w2.weight[6, 10]",
                                             "experts.0.w3.weight[10, 6]", "experts.1.w1.weight[10, 6]",
                                             "experts.1.w2.weight[6, 10]", "experts.1.w3.weight[10, 6]",
                                             "experts.2.w1.weight[10, 6]", "experts.2.w2.weight[6, 10]",
                                             "experts.2.w3.weight[10, 6]"}));
}

// Forward against the naive reference for unlimited capacity and for capacity factors that drop.
TEST(Moe, ForwardMatchesNaivePerTokenReference) {
  const int64_t C = 8, H = 12, B = 3, T = 7, N = B * T;
  for (double capacity : {0.0, 1.0, 0.5}) {
    for (int64_t top_k : {1, 2, 3}) {
      MoeConfig cfg = config_of(5, top_k, capacity, 0.01, 0.001);
      auto moe = make_moe(C, H, cfg, 7);
      scale_weights(*moe, 1.0, 0.3, 11 + uint64_t(top_k));
      Generator gen(99);
      Tensor x = randn({B, T, C}, &gen);
      nn::MoeOutput out = moe->forward(x);
      RefOut ref = naive_moe(reference_of(*moe, C, H), to_double(x), N);
      std::string what = "capacity " + std::to_string(capacity) + " top_k " + std::to_string(top_k);
      EXPECT_EQ(out.y.shape(), x.shape()) << what;
      EXPECT_EQ(out.router_logits.shape(), (Shape{N, 5})) << what;
      EXPECT_EQ(out.expert_indices.contiguous().to_vector<int64_t>(), ref.choices) << what;
      EXPECT_EQ(out.dropped, ref.dropped) << what;
      // Which tokens lost which expert: the routing the layer used, slot by slot.
      nn::Routing routing = nn::route(ref.choices, N, cfg);
      EXPECT_EQ(routing.kept, ref.kept) << what;
      expect_close(to_double(out.y), ref.y, 1e-5, 1e-4, what + " y");
      EXPECT_NEAR(out.load_balancing_loss.item(), ref.load_balancing, 1e-5) << what;
      EXPECT_NEAR(out.z_loss.item(), ref.z, 1e-5 * ref.z) << what;
      EXPECT_NEAR(out.aux_loss.item(), 0.01 * ref.load_balancing + 0.001 * ref.z, 1e-6) << what;
    }
  }
  // The capacity cases above really drop (else they test nothing): 5 experts, 21 tokens, top-2 and
  // factor 0.5 give a capacity of ceil(0.5 * 42 / 5) = 5 slots per expert, 25 < 42.
  EXPECT_EQ(nn::expert_capacity(config_of(5, 2, 0.5), N), 5);
}

// The routing rule on explicit choices. 4 tokens, 2 experts, top-2, capacity factor 0.5:
// capacity = ceil(0.5 * 4 * 2 / 2) = 2. Choices (first, second) per token: (0,1) (1,0) (0,1) (0,1).
// First choices in token order: t0->e0 (1/2), t1->e1 (1/2), t2->e0 (2/2), t3->e0 dropped.
// Then second choices: t0->e1 (2/2), t1->e0 dropped, t2->e1 dropped, t3->e1 dropped.
TEST(Moe, FirstChoicesAreServedBeforeSecondChoices) {
  MoeConfig cfg = config_of(2, 2, 0.5);
  nn::Routing r = nn::route({0, 1, 1, 0, 0, 1, 0, 1}, 4, cfg);
  EXPECT_EQ(r.kept, (std::vector<uint8_t>{1, 1, 1, 0, 1, 0, 0, 0}));
  EXPECT_EQ(r.dropped, 4);
  EXPECT_EQ(r.served, (std::vector<std::vector<int64_t>>{{0, 4}, {2, 1}}));  // slots t*2 + rank
  EXPECT_EQ(r.routed, (std::vector<int64_t>{4, 4}));                         // before capacity
  // No limit: everything is served.
  nn::Routing all = nn::route({0, 1, 1, 0, 0, 1, 0, 1}, 4, config_of(2, 2, 0.0));
  EXPECT_EQ(all.dropped, 0);
  EXPECT_EQ(all.kept, std::vector<uint8_t>(8, 1));
  // ceil: 1.25 * 3 tokens * 1 / 2 experts = 1.875 -> 2
  EXPECT_EQ(nn::expert_capacity(config_of(2, 1, 1.25), 3), 2);
}

// A dropped slot contributes nothing and the token's kept weight is not renormalised. The router is
// the identity (dim = 2 experts, gate.weight = I) so x is the router logits. 3 tokens, top-2, capacity
// factor 0.5: capacity ceil(0.5 * 3 * 2 / 2) = 2. x0 = (1, 0) and x1 = (0.5, -0.5) prefer e0,
// x2 = (-1, 1) prefers e1. First choices: t0->e0, t1->e0, t2->e1; second choices: t0->e1 (e1 now
// full), t1->e1 dropped, t2->e0 dropped. So y0 = p0(x0) e0(x0) + p1(x0) e1(x0), y1 = p0(x1) e0(x1) and
// y2 = p1(x2) e1(x2), with p < 1 (not renormalised to 1 after the drop).
TEST(Moe, DroppedSlotsContributeNothingAndWeightsAreNotRenormalised) {
  const int64_t E = 2, H = 5;
  auto moe = make_moe(E, H, config_of(E, 2, 0.5), 3);
  scale_weights(*moe, 1.0, 0.5, 5);
  moe->gate->weight.copy_(from_vector<float>({1, 0, 0, 1}, {2, 2}));
  std::vector<double> x = {1, 0, 0.5, -0.5, -1, 1};
  nn::MoeOutput out = moe->forward(from_vector(std::vector<float>(x.begin(), x.end()), {3, E}));
  EXPECT_EQ(out.dropped, 2);
  RefMoe ref = reference_of(*moe, E, H);
  auto p = [&](int64_t t, int64_t e) { return std::exp(x[size_t(t * E + e)]) / (std::exp(x[size_t(t * E)]) + std::exp(x[size_t(t * E + 1)])); };
  std::vector<double> want(6, 0.0);
  auto add = [&](int64_t t, int64_t e) {
    std::vector<double> ye = expert_forward(ref, e, &x[size_t(t * E)]);
    for (int64_t c = 0; c < E; ++c) want[size_t(t * E + c)] += p(t, e) * ye[size_t(c)];
  };
  add(0, 0), add(0, 1), add(1, 0), add(2, 1);
  expect_close(to_double(out.y), want, 1e-6, 1e-5, "y");
  expect_close(to_double(out.y), naive_moe(ref, x, 3).y, 1e-6, 1e-5, "y against the naive reference");
}

// --- gradients: autograd against central differences of the float64 reference

double reference_loss(const RefMoe& m, const std::vector<double>& x, int64_t N, const std::vector<double>& r,
                      const std::vector<int64_t>& expected_choices) {
  RefOut out = naive_moe(m, x, N);
  // A finite-difference step must not flip a top-k choice (the loss is not differentiable there).
  EXPECT_EQ(out.choices, expected_choices) << "a finite-difference step flipped a routing choice";
  double loss = m.config.aux_loss_coef * out.load_balancing + m.config.z_loss_coef * out.z;
  for (size_t i = 0; i < r.size(); ++i) loss += out.y[i] * r[i];
  return loss;
}

// Central differences of reference_loss w.r.t. every element of `values` (a member of m or x).
std::vector<double> finite_differences(RefMoe& m, std::vector<double>& x, int64_t N, const std::vector<double>& r,
                                       const std::vector<int64_t>& choices, std::vector<double>& values) {
  const double h = 1e-6;
  std::vector<double> g(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    double saved = values[i];
    values[i] = saved + h;
    double up = reference_loss(m, x, N, r, choices);
    values[i] = saved - h;
    double down = reference_loss(m, x, N, r, choices);
    values[i] = saved;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

void check_gradients(double capacity) {
  const int64_t C = 4, H = 3, N = 6;
  MoeConfig cfg = config_of(4, 2, capacity, /*aux=*/0.3, /*z=*/0.05);
  auto moe = make_moe(C, H, cfg, 21);
  scale_weights(*moe, 2.0, 0.7, 22);
  Generator gen(23);
  Tensor x = randn({2, N / 2, C}, &gen).set_requires_grad(true);
  Tensor r = randn({2, N / 2, C}, &gen);
  nn::MoeOutput out = moe->forward(x);
  if (capacity > 0) {
    EXPECT_GT(out.dropped, 0) << "the capacity case should drop slots";
  }
  Tensor loss = ops::add(ops::sum(ops::mul(out.y, r)), out.aux_loss);
  loss.backward();

  RefMoe m = reference_of(*moe, C, H);
  std::vector<double> xd = to_double(x), rd = to_double(r);
  std::vector<int64_t> choices = out.expert_indices.contiguous().to_vector<int64_t>();
  EXPECT_NEAR(loss.item(), reference_loss(m, xd, N, rd, choices), 1e-5);
  const double atol = 2e-4, rtol = 2e-3;  // f32 autograd against f64 differences
  std::string tag = " (capacity " + std::to_string(capacity) + ")";
  expect_close(to_double(x.grad()), finite_differences(m, xd, N, rd, choices, xd), atol, rtol, "dx" + tag);
  expect_close(to_double(moe->gate->weight.grad()), finite_differences(m, xd, N, rd, choices, m.gate), atol, rtol,
               "dgate" + tag);
  for (int64_t e = 0; e < cfg.num_experts; ++e) {
    const MixtralExpert& ex = mixtral_expert(*moe, e);
    RefExpert& re = m.ffn[size_t(e)];
    std::string name = "expert " + std::to_string(e) + tag;
    std::vector<double> fd1 = finite_differences(m, xd, N, rd, choices, re.w1);
    std::vector<double> fd2 = finite_differences(m, xd, N, rd, choices, re.w2);
    std::vector<double> fd3 = finite_differences(m, xd, N, rd, choices, re.w3);
    // An expert nobody reached gets no gradient at all (undefined), which must agree with zero differences.
    auto grad_or_zero = [](const Tensor& w) {
      return w.grad().defined() ? to_double(w.grad()) : std::vector<double>(size_t(w.numel()), 0.0);
    };
    expect_close(grad_or_zero(ex.w1->weight), fd1, atol, rtol, "dw1 " + name);
    expect_close(grad_or_zero(ex.w2->weight), fd2, atol, rtol, "dw2 " + name);
    expect_close(grad_or_zero(ex.w3->weight), fd3, atol, rtol, "dw3 " + name);
  }
}

TEST(Moe, GradientsMatchFiniteDifferences) { check_gradients(0.0); }
TEST(Moe, GradientsMatchFiniteDifferencesWithDroppedSlots) { check_gradients(0.5); }

// --- the auxiliary losses on hand-computed examples. The router is the identity (dim = num_experts,
// gate.weight = I), so the inputs are the router logits.

nn::MoeOutput route_logits(const std::vector<float>& logits, int64_t experts, int64_t top_k, double aux, double z) {
  auto moe = make_moe(experts, 3, config_of(experts, top_k, 0.0, aux, z), 5);
  std::vector<float> eye(size_t(experts * experts), 0.0f);
  for (int64_t e = 0; e < experts; ++e) eye[size_t(e * experts + e)] = 1.0f;
  moe->gate->weight.copy_(from_vector(eye, {experts, experts}));
  const int64_t N = int64_t(logits.size()) / experts;
  return moe->forward(from_vector(logits, {N, experts}));
}

// Switch Transformer, top-1, 2 experts, 4 tokens. Logits (ln 3, 0) give probabilities (3/4, 1/4);
// (0, ln 3) give (1/4, 3/4). Tokens: (ln3,0) (0,ln3) (ln3,0) (ln3,0).
//   choices e0 e1 e0 e0 -> f = (3/4, 1/4)
//   P_0 = (3/4 + 1/4 + 3/4 + 3/4) / 4 = 5/8, P_1 = 3/8
//   loss = 2 * (3/4 * 5/8 + 1/4 * 3/8) = 2 * 18/32 = 9/8.
// z-loss: every token's logsumexp is ln(3 + 1) = ln 4, so z = (ln 4)^2.
TEST(Moe, LoadBalancingLossIsSwitchTransformersAtTopOne) {
  const float l3 = float(std::log(3.0));
  nn::MoeOutput out = route_logits({l3, 0, 0, l3, l3, 0, l3, 0}, 2, 1, 0.1, 0.01);
  EXPECT_NEAR(out.load_balancing_loss.item(), 9.0 / 8.0, 1e-6);
  EXPECT_NEAR(out.z_loss.item(), std::pow(std::log(4.0), 2), 1e-5);
  EXPECT_NEAR(out.aux_loss.item(), 0.1 * 9.0 / 8.0 + 0.01 * std::pow(std::log(4.0), 2), 1e-6);
  // Perfectly balanced top-1 routing gives exactly 1.
  nn::MoeOutput balanced = route_logits({l3, 0, 0, l3}, 2, 1, 0.1, 0.0);
  EXPECT_NEAR(balanced.load_balancing_loss.item(), 1.0, 1e-6);
}

// Hugging Face's load_balancing_loss_func at top-2, 3 experts, 2 tokens:
//   t0 logits (ln 4, ln 3, 0) -> probs (4/8, 3/8, 1/8), top-2 = e0, e1
//   t1 logits (0, ln 2, ln 5) -> probs (1/8, 2/8, 5/8), top-2 = e2, e1
//   HF: tokens_per_expert = mean over tokens of the one-hot [N, k, E] mask, [k, E]:
//     rank 0: (1/2, 0, 1/2), rank 1: (0, 1, 0)
//   router_prob_per_expert P = ((4+1)/16, (3+2)/16, (1+5)/16) = (5/16, 5/16, 6/16)
//   loss = 3 * sum(tokens_per_expert * P) = 3 * (5/32 + 6/32 + 5/16) = 3 * 21/32 = 63/32.
// z-loss: lse(t0) = ln 8, lse(t1) = ln 8 -> (ln 8)^2.
TEST(Moe, LoadBalancingLossIsHuggingFacesAtTopTwo) {
  const float l2 = float(std::log(2.0)), l3 = float(std::log(3.0)), l4 = float(std::log(4.0)), l5 = float(std::log(5.0));
  nn::MoeOutput out = route_logits({l4, l3, 0, 0, l2, l5}, 3, 2, 1.0, 0.0);
  EXPECT_EQ(out.expert_indices.contiguous().to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 1}));
  EXPECT_NEAR(out.load_balancing_loss.item(), 63.0 / 32.0, 1e-6);
  EXPECT_NEAR(out.z_loss.item(), std::pow(std::log(8.0), 2), 1e-5);
  EXPECT_NEAR(out.aux_loss.item(), 63.0 / 32.0, 1e-6);  // z coefficient 0
}

// z-loss with different logsumexps: tokens (ln 3, 0) and (ln 7, 0) have lse ln 4 = 2 ln 2 and
// ln 8 = 3 ln 2, so z = ((2 ln 2)^2 + (3 ln 2)^2) / 2 = 6.5 (ln 2)^2.
TEST(Moe, ZLossIsTheMeanSquaredLogSumExp) {
  nn::MoeOutput out = route_logits({float(std::log(3.0)), 0, float(std::log(7.0)), 0}, 2, 1, 0.0, 1.0);
  EXPECT_NEAR(out.z_loss.item(), 6.5 * std::pow(std::log(2.0), 2), 1e-5);
  EXPECT_NEAR(out.aux_loss.item(), 6.5 * std::pow(std::log(2.0), 2), 1e-5);  // aux coefficient 0
}

TEST(Moe, ValidateNamesTheBadField) {
  expect_mentions(error_message([] { nn::validate(config_of(4, 5, 0.0)); }), {"num_experts_per_tok", "5", "[1, 4]"});
  expect_mentions(error_message([] { nn::validate(config_of(4, 0, 0.0)); }), {"num_experts_per_tok", "0"});
  expect_mentions(error_message([] { nn::validate(config_of(4, 2, 0.0, -0.1)); }), {"router_aux_loss_coef", "-0.1"});
  expect_mentions(error_message([] { nn::validate(config_of(4, 2, 0.0, 0.0, -2)); }), {"router_z_loss_coef", "-2"});
  expect_mentions(error_message([] { nn::validate(config_of(4, 2, -1.5)); }), {"moe_capacity_factor", "-1.5"});
  expect_mentions(error_message([] { nn::validate(config_of(-1, 2, 0.0)); }), {"num_local_experts", "-1"});
  EXPECT_EQ(error_message([] { nn::validate(config_of(4, 4, 1.25, 0.01, 0.001)); }), "<nothing thrown>");
  // The layer validates its config, and needs experts.
  expect_mentions(error_message([] { make_moe(4, 4, config_of(2, 3, 0.0), 1); }), {"num_experts_per_tok"});
  expect_mentions(error_message([] { make_moe(4, 4, config_of(0, 2, 0.0), 1); }), {"MoeFfn", "num_experts"});
  auto moe = make_moe(4, 4, config_of(2, 1, 0.0), 1);
  expect_mentions(error_message([&] { moe->forward(zeros({3, 5})); }), {"MoeFfn", "[..., 4]", "[3, 5]"});
}

}  // namespace
}  // namespace ld::test
