#include <gtest/gtest.h>

#include "core/allocator.hpp"
#include "core/rng.hpp"
#include "models/tiny_transformer.hpp"
#include "ops/ops.hpp"
#include "train/adamw.hpp"

using namespace ld;

// A training step asks for the same sizes every step: from the second step on, every tensor
// allocation must come from the pool (no malloc, no fresh pages to fault in).
TEST(SteadyState, TrainingStepsAfterTheFirstMakeNoSystemAllocation) {
  models::StackConfig config;
  config.n_layer = 2, config.n_head = 4, config.n_kv_head = 4, config.n_embd = 64, config.vocab_size = 101;
  config.n_positions = 32;
  Generator gen(3);
  models::Params params = models::init_params(config, gen);
  std::vector<train::ParamGroup> groups(1);
  for (auto& [name, p] : params) groups[0].params.push_back(p);
  train::AdamW adamw(groups, train::AdamWOptions{});
  Tensor ids = from_vector(std::vector<int64_t>(4 * 32, 7), {4, 32});
  Tensor targets = from_vector(std::vector<int64_t>(4 * 32, 9), {4 * 32});

  auto step = [&] {
    Tensor logits = models::forward_logits(config, params, ids);
    Tensor loss = ops::cross_entropy(logits.reshape({-1, config.vocab_size}), targets);
    adamw.zero_grad();
    loss.backward();
    adamw.step();
  };
  step();
  step();
  AllocatorStats before = CachingHostAllocator::instance().stats();
  step();
  step();
  AllocatorStats after = CachingHostAllocator::instance().stats();
  EXPECT_EQ(after.system_allocations, before.system_allocations);
  EXPECT_GT(after.pool_hits, before.pool_hits);  // the steps did allocate, from the pool
}
