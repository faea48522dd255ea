// Activation checkpointing: a block run through autograd::checkpoint must give the same outputs and
// the same gradients (inputs and every parameter it uses, found without being told) as the block
// run directly, fire each parameter's grad-ready hook once, nest, replay dropout masks, and hold
// less memory after the forward.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/checkpoint.hpp"
#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/allocator.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

using namespace ld;
using autograd::checkpoint;

namespace {

// Deterministic random tensor that does not disturb the default generator.
Tensor random(const Shape& shape, uint64_t seed, double stddev = 1.0) {
  Generator gen(seed);
  return normal(shape, 0.0f, float(stddev), &gen);
}

Tensor parameter(const Shape& shape, uint64_t seed, double stddev) {
  Tensor t = random(shape, seed, stddev);
  t.set_requires_grad(true);
  return t;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(double(want[i])))) << what << " at " << i;
}

// linear -> gelu -> linear, the feed-forward block of a Transformer layer.
struct Mlp {
  Tensor w1, b1, w2, b2;
  Mlp(int64_t width, int64_t hidden, uint64_t seed)
      : w1(parameter({hidden, width}, seed, 1.0 / std::sqrt(double(width)))),
        b1(parameter({hidden}, seed + 1, 0.1)),
        w2(parameter({width, hidden}, seed + 2, 1.0 / std::sqrt(double(hidden)))),
        b2(parameter({width}, seed + 3, 0.1)) {}
  Tensor operator()(const Tensor& x) const { return ops::linear(ops::gelu(ops::linear(x, w1, b1)), w2, b2); }
  std::map<std::string, Tensor> named() const { return {{"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}}; }
};

using Grads = std::map<std::string, std::vector<float>>;

// Takes every gradient in `leaves` and clears it, so the next run starts from nothing.
Grads take_grads(const std::map<std::string, Tensor>& leaves) {
  Grads out;
  for (auto [name, t] : leaves) {
    EXPECT_TRUE(t.grad().defined()) << name << " got no gradient";
    if (t.grad().defined()) out[name] = t.grad().to_vector();
    t.zero_grad();
  }
  return out;
}

void expect_same_grads(const Grads& got, const Grads& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, g] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    expect_close(got.at(name), g, tol, "gradient of " + name);
  }
}

// Counts hook calls and keeps the last gradient each hook saw.
struct HookLog {
  std::map<std::string, int> calls;
  std::map<std::string, std::vector<float>> last;
  void watch(const std::string& name, Tensor param) {
    param.register_grad_ready_hook([this, name](const Tensor& grad) {
      ++calls[name];
      last[name] = grad.to_vector();
    });
  }
};

// L = sum(out * r): a loss whose gradient with respect to out is a random tensor, not all ones.
Tensor weighted_sum(const Tensor& out, uint64_t seed) { return ops::sum(ops::mul(out, random(out.shape(), seed))); }

}  // namespace

TEST(Checkpoint, MlpBlockMatchesTheDirectRunForInputsAndAllParameters) {
  Mlp mlp(8, 32, 100);
  Tensor x0 = parameter({2, 5, 8}, 1, 1.0);
  std::map<std::string, Tensor> leaves = mlp.named();
  leaves["x0"] = x0;

  // The block's input is produced by an op, as in a real model (an edge to a node, not a leaf).
  Tensor direct = mlp(ops::scale(x0, 0.5));
  weighted_sum(direct, 7).backward();
  Grads want = take_grads(leaves);

  auto block = [&mlp](const std::vector<Tensor>& in) { return std::vector<Tensor>{mlp(in[0])}; };
  std::vector<Tensor> out = checkpoint(block, {ops::scale(x0, 0.5)});
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].requires_grad());
  ASSERT_NE(out[0].grad_fn(), nullptr);
  EXPECT_STREQ(out[0].grad_fn()->name(), "CheckpointBackward");
  expect_close(out[0].to_vector(), direct.to_vector(), 1e-6, "output");
  weighted_sum(out[0], 7).backward();
  expect_same_grads(take_grads(leaves), want, 1e-6);
}

TEST(Checkpoint, ParameterHooksFireOnceWithTheFinalGradient) {
  Mlp mlp(8, 16, 200);
  Tensor x = parameter({3, 8}, 2, 1.0);
  std::map<std::string, Tensor> leaves = mlp.named();
  leaves["x"] = x;
  HookLog log;
  for (auto& [name, t] : leaves) log.watch(name, t);

  auto block = [&mlp](const std::vector<Tensor>& in) { return std::vector<Tensor>{mlp(in[0])}; };
  for (int step = 1; step <= 2; ++step) {
    weighted_sum(checkpoint(block, {x})[0], 8).backward();
    for (auto& [name, t] : leaves) {
      EXPECT_EQ(log.calls[name], step) << name << " hook calls after backward " << step;
      expect_close(log.last[name], t.grad().to_vector(), 0, name + ": hook vs final .grad");
    }
  }
}

TEST(Checkpoint, NestedCheckpointsMatchTheDirectRun) {
  Tensor w1 = parameter({12, 6}, 300, 0.4), b1 = parameter({12}, 301, 0.1);
  Tensor w2 = parameter({12, 12}, 302, 0.3), b2 = parameter({12}, 303, 0.1);
  Tensor w3 = parameter({6, 12}, 304, 0.3);
  Tensor x = parameter({4, 6}, 3, 1.0);
  std::map<std::string, Tensor> leaves = {{"w1", w1}, {"b1", b1}, {"w2", w2}, {"b2", b2}, {"w3", w3}, {"x", x}};
  auto inner = [&](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{ops::silu(ops::linear(in[0], w2, b2))};
  };
  auto outer = [&](const std::vector<Tensor>& in) {
    Tensor h = ops::gelu(ops::linear(in[0], w1, b1));
    h = checkpoint(inner, {h})[0];
    return std::vector<Tensor>{ops::linear(ops::tanh(h), w3)};
  };
  auto direct = [&](const std::vector<Tensor>& in) {
    Tensor h = ops::gelu(ops::linear(in[0], w1, b1));
    return std::vector<Tensor>{ops::linear(ops::tanh(inner({h})[0]), w3)};
  };

  Tensor want_out = direct({x})[0];
  weighted_sum(want_out, 9).backward();
  Grads want = take_grads(leaves);

  HookLog log;
  for (auto& [name, t] : leaves) log.watch(name, t);
  Tensor out = checkpoint(outer, {x})[0];
  expect_close(out.to_vector(), want_out.to_vector(), 1e-6, "output");
  weighted_sum(out, 9).backward();
  for (auto& [name, t] : leaves) EXPECT_EQ(log.calls[name], 1) << name << " hook calls";
  expect_same_grads(take_grads(leaves), want, 1e-6);
}

// An output that is one of the inputs, untouched, still passes its gradient back.
TEST(Checkpoint, OutputThatIsAnInputCarriesItsGradient) {
  Mlp mlp(4, 8, 400);
  Tensor x = parameter({3, 4}, 4, 1.0);
  std::map<std::string, Tensor> leaves = mlp.named();
  leaves["x"] = x;
  auto loss = [](const std::vector<Tensor>& outs) {
    return ops::add(weighted_sum(outs[0], 10), weighted_sum(outs[1], 11));
  };
  loss({x, mlp(x)}).backward();
  Grads want = take_grads(leaves);
  auto block = [&mlp](const std::vector<Tensor>& in) { return std::vector<Tensor>{in[0], mlp(in[0])}; };
  loss(checkpoint(block, {x})).backward();
  expect_same_grads(take_grads(leaves), want, 1e-6);
}

// An undefined input (an optional bias or mask) is allowed by checkpoint's forward; the backward
// must cope with it too.
TEST(Checkpoint, UndefinedInputIsPassedThroughToTheRecompute) {
  Tensor w = parameter({5, 4}, 500, 0.5);
  Tensor x = parameter({3, 4}, 5, 1.0);
  std::map<std::string, Tensor> leaves = {{"w", w}, {"x", x}};
  auto block = [&w](const std::vector<Tensor>& in) { return std::vector<Tensor>{ops::linear(in[0], w, in[1])}; };
  weighted_sum(block({x, Tensor()})[0], 12).backward();
  Grads want = take_grads(leaves);
  std::vector<Tensor> out = checkpoint(block, {x, Tensor()});
  EXPECT_NO_THROW(weighted_sum(out[0], 12).backward());
  expect_same_grads(take_grads(leaves), want, 1e-6);
}

TEST(Checkpoint, RetainGraphRecomputesForEachBackward) {
  Mlp mlp(6, 12, 600);
  Tensor x = parameter({2, 6}, 6, 1.0);
  std::map<std::string, Tensor> leaves = mlp.named();
  leaves["x"] = x;
  weighted_sum(mlp(x), 13).backward();
  Grads once = take_grads(leaves);

  auto block = [&mlp](const std::vector<Tensor>& in) { return std::vector<Tensor>{mlp(in[0])}; };
  Tensor loss = weighted_sum(checkpoint(block, {x})[0], 13);
  autograd::run_backward({loss}, {ones({})}, /*retain_graph=*/true);
  autograd::run_backward({loss}, {ones({})}, /*retain_graph=*/true);
  Grads twice = take_grads(leaves);
  for (auto& [name, g] : once)
    for (float& v : g) v *= 2;
  expect_same_grads(twice, once, 1e-6);
}

// A second backward through a released checkpoint must be refused before the recompute runs (the
// node has dropped its inputs; running fn on them would read past the end of the input list).
TEST(Checkpoint, SecondBackwardWithoutRetainGraphIsRefused) {
  Mlp mlp(6, 12, 650);
  Tensor x = parameter({2, 6}, 6, 1.0);
  int calls = 0;
  auto block = [&mlp, &calls](const std::vector<Tensor>& in) {
    ++calls;
    return std::vector<Tensor>{mlp(in.at(0))};
  };
  Tensor out = checkpoint(block, {x})[0];
  weighted_sum(out, 15).backward();
  EXPECT_EQ(calls, 2) << "one forward and one recompute";
  std::vector<float> w1_grad = mlp.w1.grad().to_vector();
  std::string msg;
  try {
    weighted_sum(out, 15).backward();  // a fresh loss node, but the checkpoint node was released
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("retain_graph"), std::string::npos) << "message: " << msg;
  EXPECT_EQ(calls, 2) << "the released checkpoint ran its function again";
  expect_close(mlp.w1.grad().to_vector(), w1_grad, 0, "w1 after the refused backward");
}

TEST(Checkpoint, UnderNoGradItJustRunsTheFunction) {
  Mlp mlp(4, 8, 700);
  Tensor x = random({2, 4}, 7);
  autograd::NoGradGuard no_grad;
  auto block = [&mlp](const std::vector<Tensor>& in) { return std::vector<Tensor>{mlp(in[0])}; };
  Tensor out = checkpoint(block, {x})[0];
  EXPECT_FALSE(out.requires_grad());
  EXPECT_EQ(out.grad_fn(), nullptr);
  expect_close(out.to_vector(), mlp(x).to_vector(), 0, "output");
}

// The recompute must draw the same dropout mask as the first forward, even when other random draws
// happened in between; and it must leave the generator where it found it.
TEST(Checkpoint, DropoutInsideACheckpointReplaysTheSameMask) {
  Mlp mlp(8, 32, 800);
  Tensor x = parameter({4, 8}, 8, 1.0);
  std::map<std::string, Tensor> leaves = mlp.named();
  leaves["x"] = x;
  auto block = [&mlp](const std::vector<Tensor>& in) {
    Tensor h = ops::gelu(ops::linear(in[0], mlp.w1, mlp.b1));
    h = ops::dropout(h, 0.5);
    return std::vector<Tensor>{ops::linear(h, mlp.w2, mlp.b2)};
  };

  manual_seed(1234);
  Tensor direct = block({x})[0];
  weighted_sum(direct, 14).backward();
  Grads want = take_grads(leaves);
  {
    autograd::NoGradGuard no_grad;
    EXPECT_GT(ops::sum(ops::mul(ops::sub(direct, mlp(x)), ops::sub(direct, mlp(x)))).item(), 1e-3)
        << "dropout changed nothing: the test would not see a wrong mask";
  }

  manual_seed(1234);
  Tensor out = checkpoint(block, {x})[0];
  expect_close(out.to_vector(), direct.to_vector(), 1e-6, "output");
  randn({1000});  // move the default generator on before the backward
  Generator& gen = default_generator();
  uint64_t seed_before = gen.seed(), offset_before = gen.offset();
  weighted_sum(out, 14).backward();
  EXPECT_EQ(gen.seed(), seed_before);
  EXPECT_EQ(gen.offset(), offset_before) << "the backward left the generator moved";
  expect_same_grads(take_grads(leaves), want, 1e-6);
}

// After the forward, a direct run holds the block's hidden activations (saved for backward) and a
// checkpointed one holds only its output.
TEST(Checkpoint, ForwardDoesNotKeepIntermediateActivations) {
  const int64_t rows = 256, width = 128, hidden = 1024;
  Mlp mlp(width, hidden, 900);
  Tensor x = parameter({rows, width}, 9, 1.0);
  const size_t out_bytes = size_t(rows * width) * sizeof(float);
  const size_t hidden_bytes = size_t(rows * hidden) * sizeof(float);
  auto in_use = [] { return CachingHostAllocator::instance().stats().bytes_in_use; };
  auto block = [&mlp](const std::vector<Tensor>& in) { return std::vector<Tensor>{mlp(in[0])}; };

  size_t direct_held = 0, checkpoint_held = 0;
  {
    size_t before = in_use();
    Tensor out = mlp(x);
    direct_held = in_use() - before;
  }
  {
    size_t before = in_use();
    Tensor out = checkpoint(block, {x})[0];
    checkpoint_held = in_use() - before;
  }
  // gelu saves its input and output, both [rows, hidden]
  EXPECT_GE(direct_held, out_bytes + 2 * hidden_bytes) << "the direct run should hold its activations";
  EXPECT_LE(checkpoint_held, out_bytes + hidden_bytes / 8)
      << "checkpoint kept " << checkpoint_held << " bytes after forward (direct: " << direct_held << ")";
}
