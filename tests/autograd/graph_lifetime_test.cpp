#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "autograd/node.hpp"
#include "core/rng.hpp"
#include "ops/ops.hpp"

using namespace ld;

namespace {

// Runs `forward` on inputs that require grad, keeps only a weak reference to the graph, drops the
// outputs without a backward, and reports whether the graph was freed. A node that saves one of its
// own outputs without detaching it keeps itself alive forever (a leak per forward in inference).
bool graph_freed_without_backward(const std::function<std::vector<Tensor>(Generator&)>& forward) {
  Generator gen(5);
  std::weak_ptr<autograd::Node> node;
  {
    std::vector<Tensor> outs = forward(gen);
    EXPECT_TRUE(outs[0].grad_fn() != nullptr);
    node = outs[0].grad_fn();
  }
  return node.expired();
}

Tensor param(const Shape& s, Generator& gen) { return randn(s, &gen).set_requires_grad(true); }

}  // namespace

TEST(GraphLifetime, MultiOutputAndSavingOpsFreeTheirGraphWithoutBackward) {
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) {
    auto r = ops::add_rmsnorm(param({3, 8}, g), param({3, 8}, g), param({8}, g));
    return std::vector<Tensor>{r.sum, r.normed};
  }));
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) {
    auto r = ops::add_layernorm(param({3, 8}, g), param({3, 8}, g), param({8}, g), param({8}, g));
    return std::vector<Tensor>{r.normed, r.sum};
  }));
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) { return ops::split(param({6, 4}, g), {2, 4}, 0); }));
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) {
    auto r = ops::topk(param({4, 9}, g), 3);
    return std::vector<Tensor>{r.values, r.indices};
  }));
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) {
    return std::vector<Tensor>{ops::attention(param({1, 2, 5, 4}, g), param({1, 2, 5, 4}, g), param({1, 2, 5, 4}, g))};
  }));
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) {
    return std::vector<Tensor>{ops::div(param({3}, g), param({3}, g))};  // div saves its output
  }));
  EXPECT_TRUE(graph_freed_without_backward([](Generator& g) {
    return std::vector<Tensor>{ops::softmax(param({2, 5}, g))};
  }));
}
