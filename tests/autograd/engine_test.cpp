// The autograd engine, checked on small graphs whose gradients are known in closed form: seeding,
// error messages, accumulation into .grad, graphs that reuse tensors, frozen leaves, grad mode,
// grad-ready hooks (order and timing, which data parallel relies on), buffer ownership of .grad,
// retain_graph and gradients through non-contiguous views.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

using namespace ld;

namespace {

Tensor leaf(const std::vector<float>& values, const Shape& shape) {
  Tensor t = from_vector(values, shape);
  t.set_requires_grad(true);
  return t;
}

// Deterministic random tensor that does not disturb the default generator.
Tensor random(const Shape& shape, uint64_t seed, bool requires_grad = false) {
  Generator gen(seed);
  Tensor t = randn(shape, &gen);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(double(want[i])))) << what << " at " << i;
}

void expect_grad(const Tensor& t, const std::vector<float>& want, const std::string& what, double tol = 1e-5) {
  ASSERT_TRUE(t.grad().defined()) << what << ": no gradient";
  EXPECT_EQ(t.grad().shape(), t.shape()) << what;
  expect_close(t.grad().to_vector(), want, tol, what);
}

std::vector<float> scaled(std::vector<float> v, float factor) {
  for (float& x : v) x *= factor;
  return v;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Leaves grad mode on whatever a test does to it.
class Autograd : public ::testing::Test {
 protected:
  void TearDown() override { autograd::set_grad_enabled(true); }
};

}  // namespace

// --- seeding and errors

TEST_F(Autograd, BackwardFromScalarSeedsWithOne) {
  Tensor x = leaf({1, -2, 3, 0.5f}, {2, 2});
  Tensor loss = ops::sum(ops::mul(x, x));
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_TRUE(loss.requires_grad());
  EXPECT_NE(loss.grad_fn(), nullptr);
  loss.backward();
  expect_grad(x, {2, -4, 6, 1}, "d sum(x^2)");

  Tensor y = leaf({1, -2, 3, 0.5f}, {2, 2});
  ops::mean(ops::mul(y, y)).reshape({1}).backward();  // one element, not 0-dim: still a scalar loss
  expect_grad(y, {0.5f, -1, 1.5f, 0.25f}, "d mean(y^2)");
}

TEST_F(Autograd, BackwardOnNonScalarNeedsAGradient) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = ops::mul(x, x);
  std::string msg = ld::test::error_message([&] { y.backward(); });
  EXPECT_TRUE(contains(msg, "backward: a gradient must be given for a non-scalar tensor of shape [2, 3]")) << msg;
  EXPECT_FALSE(x.grad().defined());

  msg = ld::test::error_message([&] { y.backward(ones({6})); });
  EXPECT_TRUE(contains(msg, "gradient shape [6] does not match tensor shape [2, 3]")) << msg;
  EXPECT_FALSE(x.grad().defined());

  y.backward(from_vector<float>({1, 0, -1, 2, 0.5f, 1}, {2, 3}));
  expect_grad(x, {2, 0, -6, 16, 5, 12}, "2 x g");
}

TEST_F(Autograd, BackwardOnTensorThatDoesNotRequireGradThrows) {
  Tensor c = from_vector<float>({1, 2, 3}, {3});
  Tensor loss = ops::sum(ops::mul(c, c));
  EXPECT_FALSE(loss.requires_grad());
  std::string msg = ld::test::error_message([&] { loss.backward(); });
  EXPECT_TRUE(contains(msg, "backward: the tensor does not require grad")) << msg;
}

// --- accumulation

TEST_F(Autograd, GradAccumulatesAcrossBackwardCallsUntilZeroGrad) {
  Tensor x = leaf({0.5f, -1, 2}, {3});
  auto loss = [&] { return ops::sum(ops::mul(ops::tanh(x), x)); };  // d/dx = tanh(x) + x (1 - tanh^2 x)
  std::vector<float> want;
  for (float v : x.to_vector()) want.push_back(std::tanh(v) + v * (1 - std::tanh(v) * std::tanh(v)));

  loss().backward();
  expect_grad(x, want, "first backward");
  loss().backward();
  expect_grad(x, scaled(want, 2), "second backward accumulates");

  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  loss().backward();
  expect_grad(x, want, "after zero_grad");
}

// --- graph shapes

TEST_F(Autograd, TensorUsedSeveralTimesGetsTheSummedGradient) {
  Tensor x = leaf({1, -2, 3}, {3});
  ops::sum(ops::add(ops::mul(x, x), x)).backward();  // 2x + 1
  expect_grad(x, {3, -3, 7}, "x*x + x");

  Tensor y = leaf({1, -2, 3}, {3});
  ops::sum(ops::add(y, y)).backward();
  expect_grad(y, {2, 2, 2}, "y + y");
}

TEST_F(Autograd, DiamondGraphSumsBothBranches) {
  Tensor x = leaf({0.3f, -0.7f, 1.2f}, {3});
  Tensor a = ops::tanh(x);  // shared intermediate node
  Tensor loss = ops::sum(ops::sub(ops::scale(a, 3.0), ops::mul(a, a)));
  loss.backward();
  std::vector<float> want;  // (3 - 2a)(1 - a^2)
  for (float v : x.to_vector()) {
    float t = std::tanh(v);
    want.push_back((3 - 2 * t) * (1 - t * t));
  }
  expect_grad(x, want, "3a - a^2");

  // Two views of the same intermediate meeting in a broadcast product: sum(a_i a_j) = (sum a)^2.
  Tensor y = leaf({0.3f, -0.7f, 1.2f}, {3});
  Tensor b = ops::tanh(y);
  ops::sum(ops::mul(b.reshape({3, 1}), b.reshape({1, 3}))).backward();
  float total = 0;
  for (float v : y.to_vector()) total += std::tanh(v);
  want.clear();
  for (float v : y.to_vector()) want.push_back(2 * total * (1 - std::tanh(v) * std::tanh(v)));
  expect_grad(y, want, "(sum a)^2");
}

// --- frozen leaves and grad mode

TEST_F(Autograd, FrozenLeavesGetNoGradButPassGradientThrough) {
  Tensor x = random({4, 3}, 1);
  Tensor w1 = random({5, 3}, 2, true), b1 = random({5}, 3, true);
  Tensor w2 = random({6, 5}, 4, true);  // the middle layer, frozen in the second run
  Tensor w3 = random({2, 6}, 5, true);
  auto loss = [&] {
    Tensor h = ops::gelu(ops::linear(x, w1, b1));
    h = ops::tanh(ops::linear(h, w2));
    return ops::sum(ops::linear(h, w3));
  };
  loss().backward();
  std::vector<float> w1_grad = w1.grad().to_vector(), w3_grad = w3.grad().to_vector();
  for (Tensor* p : {&w1, &b1, &w2, &w3}) p->zero_grad();

  w2.set_requires_grad(false);
  loss().backward();
  EXPECT_FALSE(w2.grad().defined()) << "a frozen parameter got a gradient";
  EXPECT_FALSE(x.grad().defined());
  expect_grad(w1, w1_grad, "w1 below the frozen layer");
  expect_grad(w3, w3_grad, "w3 above the frozen layer");
  EXPECT_TRUE(b1.grad().defined());
}

TEST_F(Autograd, NoGradGuardRecordsNothingAndRestoresTheMode) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  Tensor w = random({3, 2}, 7, true);
  {
    autograd::NoGradGuard no_grad;
    EXPECT_FALSE(autograd::grad_enabled());
    for (Tensor y : {ops::mul(x, x), ops::linear(x, w), ops::gelu(x), ops::sum(x), x.transpose(0, 1),
                     x.reshape({4}), x.narrow(0, 1, 1)}) {
      EXPECT_FALSE(y.requires_grad());
      EXPECT_EQ(y.grad_fn(), nullptr);
    }
    expect_close(ops::mul(x, x).to_vector(), {1, 4, 9, 16}, 0, "values are still computed");
  }
  EXPECT_TRUE(autograd::grad_enabled());
  EXPECT_TRUE(ops::mul(x, x).requires_grad());

  // Guards nest and each restores what it found, including "off".
  autograd::set_grad_enabled(false);
  {
    autograd::GradModeGuard on(true);
    EXPECT_TRUE(autograd::grad_enabled());
    EXPECT_NE(ops::mul(x, x).grad_fn(), nullptr);
    {
      autograd::NoGradGuard off;
      EXPECT_FALSE(autograd::grad_enabled());
    }
    EXPECT_TRUE(autograd::grad_enabled());
  }
  EXPECT_FALSE(autograd::grad_enabled());
  {
    autograd::NoGradGuard off;
  }
  EXPECT_FALSE(autograd::grad_enabled());
  autograd::set_grad_enabled(true);
}

TEST_F(Autograd, SetRequiresGradRejectsNonLeavesAndIntegerTensors) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = ops::mul(x, x);
  std::string msg = ld::test::error_message([&] { y.set_requires_grad(true); });
  EXPECT_TRUE(contains(msg, "set_requires_grad: only leaf tensors")) << msg;

  Tensor ids = arange(4);
  msg = ld::test::error_message([&] { ids.set_requires_grad(true); });
  EXPECT_TRUE(contains(msg, "set_requires_grad: a i64 tensor cannot require gradients")) << msg;
  EXPECT_FALSE(ids.requires_grad());
  Tensor mask = from_vector<uint8_t>({1, 0}, {2});
  EXPECT_THROW(mask.set_requires_grad(true), Error);
}

// --- grad-ready hooks

namespace {

// What each hook saw: the order hooks fired in, and a copy of every gradient handed to them.
struct HookLog {
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::vector<float>>> received;
  void watch(const std::string& name, Tensor& param) {
    param.register_grad_ready_hook([this, name](const Tensor& grad) {
      order.push_back(name);
      received[name].push_back(grad.to_vector());
    });
  }
  size_t position(const std::string& name) const {
    return size_t(std::find(order.begin(), order.end(), name) - order.begin());
  }
};

}  // namespace

TEST_F(Autograd, GradReadyHooksFireOnceWithTheFinalGradientNearestTheLossFirst) {
  Tensor x = random({4, 6}, 10);
  std::map<std::string, Tensor> params = {
      {"w1", random({8, 6}, 11, true)}, {"b1", random({8}, 12, true)}, {"w2", random({8, 8}, 13, true)},
      {"b2", random({8}, 14, true)},    {"w3", random({3, 8}, 15, true)}, {"b3", random({3}, 16, true)}};
  HookLog log;
  for (auto& [name, p] : params) log.watch(name, p);
  // Overlap needs the hook to run during backward, not after it: when layer 3's weight is ready,
  // layer 1's gradient must not have been computed yet.
  std::vector<bool> w1_done_when_w3_ready;
  params["w3"].register_grad_ready_hook(
      [&w1_done_when_w3_ready, w1 = params["w1"]](const Tensor&) { w1_done_when_w3_ready.push_back(w1.grad().defined()); });
  auto loss = [&] {
    Tensor h = ops::gelu(ops::linear(x, params["w1"], params["b1"]));
    h = ops::gelu(ops::linear(h, params["w2"], params["b2"]));
    Tensor out = ops::linear(h, params["w3"], params["b3"]);
    return ops::mean(ops::mul(out, out));
  };

  for (size_t step = 1; step <= 2; ++step) {
    log.order.clear();
    loss().backward();
    if (step == 1) {
      EXPECT_EQ(w1_done_when_w3_ready, std::vector<bool>{false}) << "w3's hook ran after w1's gradient existed";
    }
    ASSERT_EQ(log.order.size(), params.size()) << "step " << step;
    for (auto& [name, p] : params) {
      ASSERT_EQ(log.received[name].size(), step) << name << " fired " << log.received[name].size() << " times";
      // The hook saw the gradient as it is after backward (accumulated over both steps in step 2).
      expect_close(log.received[name].back(), p.grad().to_vector(), 0, name + " hook vs final .grad");
    }
    // Layer 3 is nearest the loss: its gradients are final first, so its all-reduce can start first.
    EXPECT_LT(log.position("w3"), log.position("w2"));
    EXPECT_LT(log.position("b3"), log.position("w2"));
    EXPECT_LT(log.position("w2"), log.position("w1"));
    EXPECT_LT(log.position("b2"), log.position("w1"));
    EXPECT_LT(log.position("w2"), log.position("b1"));
  }
}

TEST_F(Autograd, TiedWeightHookFiresOnceWithTheSummedGradient) {
  Tensor x = random({3, 4}, 20);
  Tensor tied = random({4, 4}, 21, true), mid = random({4, 4}, 22, true);
  HookLog log;
  log.watch("tied", tied);
  auto forward = [&](const Tensor& first, const Tensor& last) {
    Tensor h = ops::tanh(ops::linear(x, first));
    h = ops::tanh(ops::linear(h, mid));
    return ops::sum(ops::mul(ops::linear(h, last), ops::linear(h, last)));
  };
  forward(tied, tied).backward();
  ASSERT_EQ(log.order.size(), 1u);
  expect_close(log.received["tied"][0], tied.grad().to_vector(), 0, "hook vs final .grad");

  // The same network with untied copies: the tied gradient is the sum of both copies' gradients.
  Tensor first = tied.detach().clone(), last = tied.detach().clone();
  first.set_requires_grad(true);
  last.set_requires_grad(true);
  forward(first, last).backward();
  std::vector<float> want = first.grad().to_vector(), from_last = last.grad().to_vector();
  for (size_t i = 0; i < want.size(); ++i) want[i] += from_last[i];
  expect_grad(tied, want, "tied = first + last", 1e-5);
}

// --- ownership of .grad buffers

TEST_F(Autograd, LeavesFedTheSameGradientTensorDoNotShareGradBuffers) {
  Tensor x = leaf({1, 2, 3}, {3}), y = leaf({4, 5, 6}, {3});
  Tensor c = from_vector<float>({0.5f, -1, 2}, {3});
  ops::sum(ops::mul(ops::add(x, y), c)).backward();  // add hands one tensor to both inputs
  expect_grad(x, {0.5f, -1, 2}, "x");
  expect_grad(y, {0.5f, -1, 2}, "y");
  EXPECT_NE(x.grad().storage(), y.grad().storage());
  x.grad().fill_(0.0);
  expect_grad(y, {0.5f, -1, 2}, "y after x.grad.fill_(0)");
  y.grad().copy_(full({3}, 7.0));
  expect_grad(x, {0, 0, 0}, "x after y.grad.copy_(7)");

  // Seeded by the caller: neither leaf may alias the seed either.
  Tensor u = leaf({1, 2}, {2}), v = leaf({3, 4}, {2});
  Tensor seed = from_vector<float>({3, -3}, {2});
  ops::add(u, v).backward(seed);
  u.grad().fill_(1.0);
  expect_grad(v, {3, -3}, "v after u.grad.fill_(1)");
  seed.fill_(9.0);
  expect_grad(u, {1, 1}, "u after seed.fill_(9)");
  expect_grad(v, {3, -3}, "v after seed.fill_(9)");

  // A leaf that is itself the root.
  Tensor w = leaf({1, 2}, {2});
  Tensor w_seed = from_vector<float>({5, 6}, {2});
  w.backward(w_seed);
  w_seed.fill_(0.0);
  expect_grad(w, {5, 6}, "root leaf after seed.fill_(0)");
}

// --- retain_graph

namespace {
struct SmallNet {
  Tensor x = random({3, 4}, 30, true);
  Tensor w = random({5, 4}, 31, true);
  Tensor b = random({5}, 32, true);
  Tensor d = random({3, 5}, 34, true);
  Tensor c = random({3, 5}, 33);
  // linear, gelu and mul save tensors for backward; d's gradient arrives before any of them runs.
  Tensor loss() const { return ops::sum(ops::add(ops::mul(ops::gelu(ops::linear(x, w, b)), c), d)); }
  std::vector<Tensor> leaves() const { return {x, w, b, d}; }
};
}  // namespace

TEST_F(Autograd, RetainGraphAllowsRepeatedBackwardWithTheSameGradients) {
  SmallNet net;
  net.loss().backward();
  std::vector<std::vector<float>> once;
  for (Tensor p : net.leaves()) {
    once.push_back(p.grad().to_vector());
    p.zero_grad();
  }

  Tensor loss = net.loss();
  Tensor seed = ones({});
  autograd::run_backward({loss}, {seed}, /*retain_graph=*/true);
  autograd::run_backward({loss}, {seed}, /*retain_graph=*/true);
  for (size_t i = 0; i < once.size(); ++i) expect_grad(net.leaves()[i], scaled(once[i], 2), "twice, retained");
  autograd::run_backward({loss}, {seed}, /*retain_graph=*/false);  // the last use may release
  for (size_t i = 0; i < once.size(); ++i) expect_grad(net.leaves()[i], scaled(once[i], 3), "three times");
}

// Without retain_graph the saved tensors are gone after the first backward. A second backward is
// a user error: it must throw an ld::Error that says what to do, not an internal assertion.
TEST_F(Autograd, SecondBackwardWithoutRetainGraphFailsWithAClearError) {
  SmallNet net;
  Tensor loss = net.loss();
  loss.backward();
  std::vector<std::vector<float>> first;
  for (const Tensor& p : net.leaves()) first.push_back(p.grad().to_vector());
  std::string msg = ld::test::error_message([&] { loss.backward(); });
  EXPECT_TRUE(contains(msg, "retain_graph")) << "unclear error for a second backward: " << msg;
  // Refused before any gradient moved: no leaf is left half-accumulated.
  for (size_t i = 0; i < first.size(); ++i) expect_grad(net.leaves()[i], first[i], "leaf after the refused backward");
}

// --- non-contiguous views

TEST_F(Autograd, GradientsFlowBackThroughTransposeNarrowAndExpand) {
  std::vector<float> xv(12);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = 0.25f * float(i) - 1.0f;
  Tensor x = leaf(xv, {3, 4});
  Tensor w = random({5, 2, 3}, 40);
  // e[k][r][c] = x[c][r + 1]: a transposed, offset, broadcast view of x
  Tensor e = x.transpose(0, 1).narrow(0, 1, 2).unsqueeze(0).expand({5, 2, 3});
  EXPECT_FALSE(e.is_contiguous());
  ops::sum(ops::mul(e, w)).backward();
  std::vector<float> wv = w.to_vector(), want(12, 0.0f);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t k = 0; k < 5; ++k) want[size_t(c * 4 + r + 1)] += wv[size_t(k * 6 + r * 3 + c)];
  expect_grad(x, want, "sum(w * expand(narrow(x^T)))");
}

TEST_F(Autograd, GradientsFlowBackThroughPermutedSlicesIntoUnaryOps) {
  Tensor x = random({2, 3, 4}, 41, true);
  // p[a][b][c] = x[b][c][a]; narrowing p's last dim keeps x's middle rows 1 and 2
  Tensor p = x.permute({2, 0, 1}).narrow(2, 1, 2);
  ops::mean(ops::tanh(p)).backward();
  std::vector<float> xv = x.to_vector(), want(xv.size(), 0.0f);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 1; c < 3; ++c)
      for (int64_t a = 0; a < 4; ++a) {
        size_t i = size_t(b * 12 + c * 4 + a);
        float t = std::tanh(xv[i]);
        want[i] = (1 - t * t) / 16.0f;
      }
  expect_grad(x, want, "mean(tanh(narrow(permute(x))))");

  // reshape of a transposed tensor copies; the gradient must come back in x's layout
  Tensor y = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor r = y.transpose(0, 1).reshape({6});  // y[0][0], y[1][0], y[0][1], y[1][1], ...
  ops::sum(ops::mul(r, from_vector<float>({1, 2, 3, 4, 5, 6}, {6}))).backward();
  expect_grad(y, {1, 3, 5, 2, 4, 6}, "reshape(y^T)");
}

// --- the Node contract, with hand-written nodes so that no op's rule is involved

namespace {

// Two outputs: (x[:n], 2 x[n:]). Records which output gradients the engine handed over.
struct HalvesBackward : autograd::Node {
  int64_t n = 0;
  std::vector<bool> defined_seen;
  const char* name() const override { return "HalvesBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    defined_seen = {grads[0].defined(), grads[1].defined()};
    Tensor dx = zeros({2 * n});
    if (grads[0].defined()) dx.narrow(0, 0, n).copy_(grads[0]);
    if (grads[1].defined()) dx.narrow(0, n, n).copy_(ops::scale(grads[1], 2.0));
    return {dx};
  }
};

struct Halves {
  Tensor first, second;
  std::shared_ptr<HalvesBackward> node;
};

Halves halves(const Tensor& x) {
  int64_t n = x.size(0) / 2;
  Halves h;
  {
    autograd::NoGradGuard no_grad;
    h.first = x.narrow(0, 0, n).clone();
    h.second = ops::scale(x.narrow(0, n, n), 2.0);
  }
  h.node = autograd::make_node<HalvesBackward>({x});
  h.node->n = n;
  h.node->num_outputs = 2;
  autograd::set_history(h.first, h.node, 0);
  autograd::set_history(h.second, h.node, 1);
  return h;
}

// A broken rule: returns a gradient of the wrong shape.
struct WrongShapeBackward : autograd::Node {
  const char* name() const override { return "WrongShapeBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>&) override { return {ones({3})}; }
};

}  // namespace

TEST_F(Autograd, MultiOutputNodeGetsUndefinedGradientsForUnusedOutputs) {
  Tensor x = leaf({1, 2, 3, 4}, {4});
  Halves h = halves(x);
  ops::sum(ops::mul(h.second, from_vector<float>({5, 7}, {2}))).backward();
  EXPECT_EQ(h.node->defined_seen, (std::vector<bool>{false, true}));
  expect_grad(x, {0, 0, 10, 14}, "only the second output used");

  // Both outputs, the first one twice: its two contributions are summed before the node runs.
  Tensor y = leaf({1, 2, 3, 4}, {4});
  Halves k = halves(y);
  Tensor loss = ops::add(ops::add(ops::sum(k.first), ops::sum(ops::mul(k.first, k.first))), ops::sum(k.second));
  loss.backward();
  EXPECT_EQ(k.node->defined_seen, (std::vector<bool>{true, true}));
  expect_grad(y, {1 + 2 * 1, 1 + 2 * 2, 2, 2}, "both outputs");
}

TEST_F(Autograd, RuleReturningTheWrongShapeIsAnInternalError) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y;
  {
    autograd::NoGradGuard no_grad;
    y = x.clone();
  }
  autograd::set_history(y, autograd::make_node<WrongShapeBackward>({x}));
  try {
    ops::sum(y).backward();
    FAIL() << "a gradient of shape [3] for an input of shape [2] was accepted";
  } catch (const InternalError& e) {
    EXPECT_TRUE(contains(e.what(), "WrongShapeBackward returned a gradient of shape [3]")) << e.what();
  }
  EXPECT_FALSE(x.grad().defined());
}

// Leaves may be any floating dtype (set_requires_grad allows bf16 and f16); their .grad has the
// leaf's dtype and must accumulate like an f32 one (gradient accumulation over micro-batches).
TEST_F(Autograd, Bf16LeafGradAccumulatesAcrossBackwardCalls) {
  Tensor w = from_vector<float>({1, 2, 3}, {3}).to(DType::bf16);
  w.set_requires_grad(true);
  Tensor c = from_vector<float>({0.5f, -1, 4}, {3});
  for (int step = 1; step <= 2; ++step) {
    ASSERT_NO_THROW(ops::sum(ops::mul(w.to(DType::f32), c)).backward()) << "backward " << step;
    ASSERT_TRUE(w.grad().defined());
    EXPECT_EQ(w.grad().dtype(), DType::bf16);
    expect_close(w.grad().to_vector(), scaled({0.5f, -1, 4}, float(step)), 0, "bf16 grad after backward " +
                                                                                   std::to_string(step));
  }
}
