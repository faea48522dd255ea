// Tensor parallelism (dist/tensor_parallel_ops, tp_shard, tp_gpt2) against the same math done in one
// process: each rank computes the unsplit reference itself and compares its gathered results.
// The ops tests need at least 2 ranks; the model tests also run at 1 (tp = 1 is the plain model).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "dist/tensor_parallel_ops.hpp"
#include "dist/tp_gpt2.hpp"
#include "dist/tp_shard.hpp"
#include "dist/world.hpp"
#include "io/hf_config.hpp"
#include "models/gpt2.hpp"
#include "ops/ops.hpp"
#include "dist/dist_fixture.hpp"
#include "test_util.hpp"
#include "train/adamw.hpp"
#include "train/objectives.hpp"
#include "train/param_groups.hpp"

namespace ld::dist {
namespace {

using test::error_message;
using test::expect_mentions;
using test::max_abs_diff;

float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.contiguous().to_vector<float>()) m = std::max(m, std::abs(v));
  return m;
}

// max |a - b| / max |b|: a whole-tensor relative error, robust to elements near zero.
float relative_error(const Tensor& a, const Tensor& b) {
  return max_abs_diff(a, b) / std::max(max_abs(b), 1e-30f);
}

// Ids in [0, vocab), the same on every rank (a fixed seed); ignored (-100) at the given flat positions.
Tensor random_ids(int64_t rows, int64_t cols, int64_t vocab, uint64_t seed, std::vector<size_t> ignored = {}) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> ids(size_t(rows * cols));
  for (auto& id : ids) id = int64_t(rng() % uint64_t(vocab));
  for (size_t i : ignored) ids[i] = -100;
  return from_vector(ids, {rows, cols});
}

Tensor leaf(const Tensor& t) { return t.detach().clone().set_requires_grad(true); }

bool needs_ranks(int at_least) { return world().size() >= at_least; }

// --- the communication ops

TEST(TensorParallelOps, CopyToTpIsIdentityForwardAndSumsGradientsBackward) {
  if (!needs_ranks(2)) GTEST_SKIP() << "needs 2+ ranks";
  Communicator& w = world();
  const double n = w.size(), r = w.rank();
  Generator gen(11);
  const Tensor x = leaf(randn({3, 5}, &gen));
  const Tensor u = randn({3, 5}, &gen);
  const Tensor y = copy_to_tp(x, w);
  EXPECT_EQ(max_abs_diff(y, x), 0.0f);
  ops::sum(ops::mul(y, ops::scale(u, r + 1))).backward();  // each rank's own upstream gradient
  EXPECT_LE(max_abs_diff(x.grad(), ops::scale(u, n * (n + 1) / 2)), 1e-5f);
}

TEST(TensorParallelOps, ReduceFromTpSumsForwardAndPassesGradientsThrough) {
  if (!needs_ranks(2)) GTEST_SKIP() << "needs 2+ ranks";
  Communicator& w = world();
  const double n = w.size(), r = w.rank();
  Generator gen(12);
  const Tensor base = randn({4, 3}, &gen);
  const Tensor u = randn({4, 3}, &gen);
  const Tensor x = leaf(ops::scale(base, r + 1));
  const Tensor y = reduce_from_tp(x, w);
  EXPECT_LE(max_abs_diff(y, ops::scale(base, n * (n + 1) / 2)), 1e-5f);
  ops::sum(ops::mul(y, u)).backward();
  EXPECT_EQ(max_abs_diff(x.grad(), u), 0.0f);
}

TEST(TensorParallelOps, VocabParallelEmbeddingMatchesTheFullTable) {
  if (!needs_ranks(2)) GTEST_SKIP() << "needs 2+ ranks";
  Communicator& w = world();
  Generator gen(13);
  const Tensor table = leaf(randn({64, 8}, &gen));
  const TpShard rows{0, 1};
  const Tensor part = leaf(shard_tensor(table, rows, w, "table"));
  const Tensor ids = random_ids(2, 8, 64, 5);
  const Tensor u = randn({2, 8, 8}, &gen);
  const Tensor ours = vocab_parallel_embedding(ids, part, w);
  const Tensor ref = ops::embedding(ids, table);
  EXPECT_EQ(max_abs_diff(ours, ref), 0.0f);  // one nonzero term per sum: exact
  ops::sum(ops::mul(ours, u)).backward();
  ops::sum(ops::mul(ref, u)).backward();
  EXPECT_LE(max_abs_diff(part.grad(), shard_tensor(table.grad(), rows, w, "grad")), 1e-6f);
  // i32 ids give the same rows
  EXPECT_EQ(max_abs_diff(vocab_parallel_embedding(ids.to(DType::i32), part, w), ref), 0.0f);
  expect_mentions(error_message([&] { vocab_parallel_embedding(random_ids(1, 1, 1, 0).fill_(64), part, w); }),
                  {"vocab_parallel_embedding", "64", "out of range", "[0, 64)"});
}

TEST(TensorParallelOps, VocabParallelCrossEntropyMatchesCrossEntropyOnTheFullLogits) {
  if (!needs_ranks(2)) GTEST_SKIP() << "needs 2+ ranks";
  Communicator& w = world();
  Generator gen(14);
  const Tensor full = leaf(ops::scale(randn({2, 8, 64}, &gen), 3.0));
  const TpShard vocab_cols{2, 1};
  const Tensor part = leaf(shard_tensor(full, vocab_cols, w, "logits"));
  const Tensor targets = random_ids(2, 8, 64, 6, {3, 9});  // two ignored
  const Tensor ours = vocab_parallel_cross_entropy(part, targets, w);
  const Tensor ref = ops::cross_entropy(full, targets);
  EXPECT_LE(std::abs(ours.item() - ref.item()), 1e-5 * std::abs(ref.item()));
  ops::scale(ours, 0.7).backward();
  ops::scale(ref, 0.7).backward();
  EXPECT_LE(relative_error(part.grad(), shard_tensor(full.grad(), vocab_cols, w, "grad")), 1e-5f);
  // every target ignored: 0 (not nan), and no gradient
  const Tensor none = leaf(part);
  const Tensor all_ignored = vocab_parallel_cross_entropy(none, random_ids(2, 8, 64, 6).fill_(-100), w);
  EXPECT_EQ(all_ignored.item(), 0.0);
  all_ignored.backward();
  EXPECT_EQ(max_abs(none.grad()), 0.0f);
  expect_mentions(error_message([&] { vocab_parallel_cross_entropy(part, random_ids(2, 8, 64, 6).fill_(70), w); }),
                  {"vocab_parallel_cross_entropy", "target 70", "[0, 64)"});
}

// --- shards

TEST(TpShard, GroupedSplitTakesEachRanksSliceOfEveryGroupAndGathersBack) {
  Communicator& w = world();
  const int64_t n = w.size(), r = w.rank();
  // [2, 3 groups * n * 2]: element (i, j) = 100 i + j, so a slice is recognisable by its values
  std::vector<float> values;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 6 * n; ++j) values.push_back(float(100 * i + j));
  const Tensor full = from_vector(values, {2, 6 * n});
  const TpShard qkv{1, 3};
  const Tensor part = shard_tensor(full, qkv, w, "qkv");
  ASSERT_EQ(part.shape(), (Shape{2, 6}));
  const std::vector<float> got = part.to_vector<float>();
  for (int64_t g = 0; g < 3; ++g)
    for (int64_t k = 0; k < 2; ++k) EXPECT_EQ(got[size_t(2 * g + k)], float(g * 2 * n + r * 2 + k));
  EXPECT_EQ(max_abs_diff(gather_tensor(part, qkv, w, "qkv"), full), 0.0f);
  EXPECT_EQ(max_abs_diff(gather_tensor(full, TpShard{}, w, "replicated"), full), 0.0f);
  expect_mentions(error_message([&] { shard_tensor(zeros({2, 3 * n + 1}), qkv, w, "c_attn"); }),
                  {"c_attn", "does not split"});
}

// --- the model

// A random GPT-2 whose biases and LayerNorm parameters are not 0 and 1 (a bias added on every rank
// instead of once, or a norm weight lost, must show).
std::unique_ptr<models::Gpt2LMHeadModel> tiny_gpt2(bool tied, uint64_t seed = 21) {
  Generator gen(seed);
  auto model = std::make_unique<models::Gpt2LMHeadModel>(io::make_hf_config(fixture::tiny_stack(), tied), gen);
  autograd::NoGradGuard no_grad;
  for (auto& [name, p] : model->named_parameters())
    if (p.dim() == 1) p.copy_(ops::add(p, normal(p.shape(), 0.0f, 0.2f, &gen)));
  return model;
}

std::map<std::string, Tensor> by_name(const std::vector<std::pair<std::string, Tensor>>& named) {
  return {named.begin(), named.end()};
}

TEST(TensorParallelGpt2, LossAndEveryGradientMatchTheFullModel) {
  Communicator& w = world();
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied lm_head" : "untied lm_head");
    auto full = tiny_gpt2(tied);
    TensorParallelGpt2 tp(*full, w);
    const Tensor inputs = random_ids(2, 8, 64, 31), targets = random_ids(2, 8, 64, 32, {5});
    const Tensor ref = train::clm_loss(*full, inputs, targets).loss;
    const Tensor ours = tp.loss(inputs, targets);
    EXPECT_LE(std::abs(ours.item() - ref.item()), 1e-5 * std::abs(ref.item()));
    ref.backward();
    ours.backward();
    const auto full_params = by_name(full->named_parameters());
    std::set<std::string> names;
    double full_norm_sq = 0;
    for (const auto& [name, part] : tp.named_parameters()) {
      names.insert(name);
      ASSERT_TRUE(full_params.count(name)) << name;
      const Tensor g = full_params.at(name).grad();
      EXPECT_LE(relative_error(tp.gather_full(name, part.grad()), g), 1e-5f) << name;
      full_norm_sq += ops::sum(ops::mul(g, g)).item();
    }
    EXPECT_EQ(names.size(), full_params.size());
    EXPECT_LE(std::abs(tp.grad_norm() - std::sqrt(full_norm_sq)), 1e-5 * std::sqrt(full_norm_sq));
    // the local logits are this rank's vocabulary columns of the full logits
    const TpShard vocab_cols{2, 1};
    EXPECT_LE(relative_error(tp.local_logits(inputs), shard_tensor(full->forward(inputs), vocab_cols, w, "logits")),
              1e-5f);
  }
}

TEST(TensorParallelGpt2, TenAdamWStepsMatchTheFullModelTrainedInOneProcess) {
  Communicator& w = world();
  auto full = tiny_gpt2(true);
  TensorParallelGpt2 tp(*full, w);
  train::AdamWOptions options;
  options.lr = 1e-2f;
  train::AdamW full_opt(train::make_param_groups(full->named_parameters()), options);
  train::AdamW tp_opt(train::make_param_groups(tp.named_parameters()), options);
  double worst_loss = 0;
  for (int step = 0; step < 10; ++step) {
    const Tensor inputs = random_ids(2, 8, 64, 100 + step), targets = random_ids(2, 8, 64, 200 + step);
    const Tensor ref = train::clm_loss(*full, inputs, targets).loss;
    const Tensor ours = tp.loss(inputs, targets);
    worst_loss = std::max(worst_loss, std::abs(ours.item() - ref.item()) / std::abs(ref.item()));
    ref.backward();
    ours.backward();
    full_opt.step();
    tp_opt.step();
    full_opt.zero_grad();
    tp_opt.zero_grad();
  }
  EXPECT_LE(worst_loss, 1e-5);
  // AdamW divides each gradient element by its own running RMS, so an element whose true gradient
  // is ~0 moves by up to lr on rounding noise alone, differently in each summation order: the key
  // bias (softmax ignores a shift shared by all keys) and the q/k weights of near-uniform attention.
  // Measured: 2e-4 at tp = 1 (only the fused add_layernorm differs), up to 4e-4 at tp = 4. A shard
  // stepped wrongly or gathered into the wrong place is off by ~lr = 1e-2 of weights of size ~0.1-1.
  const nn::StateDict ours = tp.gather_full_state_dict(), ref = full->state_dict();
  ASSERT_EQ(ours.size(), ref.size());
  for (const auto& [name, t] : ref) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_LE(relative_error(ours.at(name), t), 2e-3f) << name;
  }
}

TEST(TensorParallelGpt2, GatheredStateDictRoundTripsThroughShards) {
  Communicator& w = world();
  auto full = tiny_gpt2(true);
  TensorParallelGpt2 tp(*full, w);
  const nn::StateDict gathered = tp.gather_full_state_dict();
  const nn::StateDict ref = full->state_dict();
  ASSERT_EQ(gathered.size(), ref.size());  // lm_head.weight included, as the alias of wte
  for (const auto& [name, t] : ref) EXPECT_EQ(max_abs_diff(gathered.at(name), t), 0.0f) << name;
  // A model built from the gathered state dict holds the same parts; any tensor laid out like a
  // parameter (an optimizer moment) goes full -> part -> full unchanged.
  TensorParallelGpt2 again(full->hf_config(), gathered, w);
  const auto again_params = by_name(again.named_parameters());
  Generator gen(41);
  for (const auto& [name, part] : tp.named_parameters()) {
    EXPECT_EQ(max_abs_diff(tp.shard_full(name, tp.gather_full(name, part)), part), 0.0f) << name;
    EXPECT_EQ(max_abs_diff(again_params.at(name), part), 0.0f) << name;
    const Tensor moment = randn(ref.at(name).shape(), &gen);
    EXPECT_EQ(max_abs_diff(tp.gather_full(name, tp.shard_full(name, moment)), moment), 0.0f) << name;
  }
  EXPECT_EQ(tp.shard_of("transformer.h.0.attn.c_attn.weight").groups, 3);
  EXPECT_TRUE(tp.shard_of("transformer.wpe.weight").replicated());
  expect_mentions(error_message([&] { tp.shard_of("transformer.h.9.attn.c_attn.weight"); }),
                  {"no parameter", "transformer.h.9.attn.c_attn.weight"});
}

TEST(TensorParallelGpt2, BadStateDictsAndConfigsAreClearErrors) {
  Communicator& w = world();
  auto full = tiny_gpt2(true);
  nn::StateDict missing = full->state_dict();
  missing.erase("transformer.h.1.mlp.c_fc.bias");
  expect_mentions(error_message([&] { TensorParallelGpt2(full->hf_config(), missing, w); }),
                  {"TensorParallelGpt2", "transformer.h.1.mlp.c_fc.bias"});
  nn::StateDict wrong = full->state_dict();
  wrong["transformer.h.0.attn.c_attn.weight"] = zeros({96, 32});
  expect_mentions(error_message([&] { TensorParallelGpt2(full->hf_config(), wrong, w); }),
                  {"transformer.h.0.attn.c_attn.weight", "[96, 32]", "[32, 96]"});
  io::HfModelConfig moe = full->hf_config();
  moe.moe.num_experts = 4;
  expect_mentions(error_message([&] { TensorParallelGpt2::check_splittable(moe, w.size()); }), {"num_local_experts"});
  io::HfModelConfig llama = full->hf_config();
  llama.model_type = "llama";
  expect_mentions(error_message([&] { TensorParallelGpt2::check_splittable(llama, w.size()); }),
                  {"model_type", "llama", "not gpt2"});
  if (w.size() < 2) return;  // one rank divides everything
  struct Case {
    const char* key;
    int64_t n_embd, n_head, n_inner, vocab;
  };
  const std::vector<Case> cases = {
      {"n_head", 24, 3, 96, 64}, {"n_inner", 32, 4, 33, 64}, {"vocab_size", 32, 4, 128, 63}};
  for (const Case& c : cases) {
    models::StackConfig s = fixture::tiny_stack();
    s.n_embd = c.n_embd, s.n_head = s.n_kv_head = c.n_head, s.vocab_size = c.vocab;
    io::HfModelConfig hf = io::make_hf_config(s, true);
    hf.stack.intermediate_size = c.n_inner;  // n_inner (make_hf_config sets 4 n_embd)
    Generator gen(1);
    models::Gpt2LMHeadModel model(hf, gen);
    expect_mentions(error_message([&] { TensorParallelGpt2(model, w); }),
                    {c.key, "not divisible by the tensor-parallel size"});
  }
}

}  // namespace
}  // namespace ld::dist
