// Pipeline parallelism (dist/pipeline_stage.hpp, dist/pipeline_schedule.hpp) against the full GPT-2
// trained in one process, which every rank computes for itself: the losses and every gradient of
// one step (gathered to rank 0), ten AdamW steps, the gathered checkpoint, for GPipe and 1F1B; the
// tied wte copies stay bit-equal; how many micro-batches each schedule keeps in flight; the
// schedules' orders; scatter/gather round trips; errors. Each runs on every layout of the world:
// PipelineGpt2Stage over all ranks, and TensorParallelGpt2Stage (dist/tp_pipeline_stage.hpp) on
// every grid tp x pp of the world (at 4 ranks: 1 x 4, 2 x 2, 4 x 1). Runs at any world size up to 4.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "dist/pipeline_schedule.hpp"
#include "dist/pipeline_stage.hpp"
#include "dist/process_grid.hpp"
#include "dist/tp_pipeline_stage.hpp"
#include "dist/world.hpp"
#include "io/hf_config.hpp"
#include "models/gpt2.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/adamw.hpp"
#include "train/param_groups.hpp"

namespace ld::dist {
namespace {

using test::max_abs_diff;

constexpr int64_t kMicroBatches = 4, kBatch = 2, kSeq = 8, kVocab = 64;
constexpr double kTolerance = 1e-5;
const Schedule kSchedules[] = {Schedule::gpipe, Schedule::one_f_one_b};

io::HfModelConfig tiny_config(int64_t n_layer = 4, bool tied = true) {
  models::StackConfig c;
  c.kind = models::StackKind::gpt2;
  c.n_layer = n_layer;
  c.n_head = 4;
  c.n_kv_head = 4;
  c.n_embd = 32;
  c.vocab_size = kVocab;
  c.n_positions = 16;
  c.intermediate_size = 4 * 32;
  c.norm_eps = 1e-5;
  return io::make_hf_config(c, tied);
}

std::unique_ptr<models::Gpt2LMHeadModel> make_model(const io::HfModelConfig& hf, uint64_t seed = 42) {
  Generator gen(seed);
  return std::make_unique<models::Gpt2LMHeadModel>(hf, gen);
}

// Ids from a fixed formula, so every rank has the same micro-batches.
Tensor ids_tensor(uint64_t seed) {
  std::vector<int64_t> ids(size_t(kBatch * kSeq));
  uint64_t x = seed * 2654435761u + 12345;
  for (int64_t& id : ids) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    id = int64_t((x >> 33) % uint64_t(kVocab));
  }
  return from_vector(ids, {kBatch, kSeq});
}

std::vector<MicroBatch> make_micro_batches(int64_t count, uint64_t seed) {
  std::vector<MicroBatch> out;
  for (int64_t m = 0; m < count; ++m)
    out.push_back({ids_tensor(seed * 1000 + uint64_t(m) * 2), ids_tensor(seed * 1000 + uint64_t(m) * 2 + 1)});
  return out;
}

// A way to cut the model over the world: PipelineGpt2Stage over every rank, or TensorParallelGpt2Stage
// on the grid tp x (world / tp).
struct Layout {
  std::string name;
  int tp = 0;  // 0: PipelineGpt2Stage
  ProcessGrid grid;
};

// Every layout of the world (collective: the grids are split here).
std::vector<Layout> layouts() {
  std::vector<Layout> out;
  out.push_back({"pipeline " + std::to_string(world().size()), 0, {}});
  for (int tp = 1; tp <= world().size(); tp *= 2) {
    if (world().size() % tp != 0) continue;
    const int pp = world().size() / tp;
    out.push_back({"tp " + std::to_string(tp) + " x pp " + std::to_string(pp), tp, make_process_grid(world(), tp, pp)});
  }
  return out;
}

std::unique_ptr<PipelineStage> make_stage(Layout& layout, const models::Gpt2LMHeadModel& model) {
  if (layout.tp == 0) return std::make_unique<PipelineGpt2Stage>(model, world());
  return std::make_unique<TensorParallelGpt2Stage>(model, *layout.grid.tp_group, *layout.grid.pp_group);
}

// The full model's step in one process: each micro-batch's mean cross-entropy, divided by their
// count before its backward, as clm_loss and gradient accumulation do.
std::vector<double> reference_step(const models::Gpt2LMHeadModel& model, const std::vector<MicroBatch>& micro_batches) {
  std::vector<double> losses;
  for (const MicroBatch& mb : micro_batches) {
    const Tensor loss = ops::cross_entropy(model.forward(mb.inputs), mb.targets);
    losses.push_back(loss.item());
    ops::scale(loss, 1.0 / double(micro_batches.size())).backward();
  }
  return losses;
}

// max |a - b| over max |b|: the error of a whole tensor relative to its scale.
double relative_error(const Tensor& a, const Tensor& b) {
  const double scale = max_abs_diff(b, zeros(b.shape(), b.dtype()));
  return double(max_abs_diff(a, b)) / std::max(scale, 1e-30);
}

double max_relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / std::abs(b[i]));
  return worst;
}

// The key part of each c_attn.bias dropped: softmax does not change when every score of a row moves
// by the same amount, so its true gradient is zero and what backward gives is rounding noise, which
// Adam normalises into full-size steps. The pipeline's rounding differs from one process's, so after
// a few steps those elements differ by design; the query and value parts are compared.
nn::StateDict without_key_biases(nn::StateDict state) {
  const std::string suffix = "attn.c_attn.bias";
  for (auto& [name, t] : state) {
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const int64_t C = t.size(0) / 3;
    t = ops::concat({t.narrow(0, 0, C), t.narrow(0, 2 * C, C)}, 0);
  }
  return state;
}

NamedTensors gradients_of(const PipelineStage& stage) {
  NamedTensors out;
  for (const auto& [name, p] : stage.named_parameters())
    out.emplace_back(name, p.grad().defined() ? p.grad() : zeros(p.shape(), p.dtype()));
  return out;
}

// Rank 0: every tensor of `reference` is in `gathered` within tolerance, and nothing else is.
void expect_matches_on_rank0(const nn::StateDict& gathered, const NamedTensors& reference, const std::string& what,
                             double tolerance = kTolerance) {
  if (world().rank() != 0) return;
  EXPECT_EQ(gathered.size(), reference.size()) << what;
  for (const auto& [name, ref] : reference) {
    const auto it = gathered.find(name);
    if (it == gathered.end()) {
      ADD_FAILURE() << what << ": " << name << " was not gathered";
      continue;
    }
    EXPECT_LE(relative_error(it->second, ref), tolerance) << what << ": " << name;
  }
}

// The tied wte's value (or gradient) on the last stage, sent to the first stage over the pipeline
// group (the same tp rank's rows), equals the first stage's exactly.
void expect_tied_copies_equal(const PipelineStage& stage, bool gradients, const std::string& what) {
  if (stage.stages() == 1 || !(stage.is_first() || stage.is_last())) return;
  Tensor mine;
  for (const auto& [name, p] : stage.named_parameters())
    if (name == "transformer.wte.weight") mine = (gradients ? p.grad() : p).contiguous();
  ASSERT_TRUE(mine.defined()) << what;  // the same on every rank of the first and last stages
  Communicator& pp = stage.communicator();
  if (stage.is_last()) return pp.send(mine.raw(), int64_t(mine.nbytes()), ElemType::u8, 0);
  Tensor last = empty(mine.shape(), mine.dtype());
  pp.recv(last.raw(), int64_t(last.nbytes()), ElemType::u8, stage.stages() - 1);
  EXPECT_EQ(max_abs_diff(last, mine), 0.0f) << what;
}

TEST(Pipeline, StagesSplitTheBlocksEvenlyAndRefuseMoreStagesThanLayers) {
  EXPECT_EQ(stage_blocks(4, 2, 0).end, 2);
  EXPECT_EQ(stage_blocks(5, 2, 0).end, 3);  // the earlier stage takes the extra block
  EXPECT_EQ(stage_blocks(5, 2, 1).first, 3);
  EXPECT_EQ(stage_blocks(5, 2, 1).end, 5);
  EXPECT_EQ(stage_blocks(4, 4, 3).first, 3);
  test::expect_mentions(test::error_message([] { stage_blocks(3, 4, 0); }), {"4 stages", "n_layer=3"});
  if (world().size() == 1) return;
  // Every rank fails alike, before any communication.
  const auto model = make_model(tiny_config(world().size() - 1));
  const std::string n_layer = "n_layer=" + std::to_string(world().size() - 1);
  test::expect_mentions(test::error_message([&] { PipelineGpt2Stage stage(*model, world()); }),
                        {(std::to_string(world().size()) + " stages").c_str(), n_layer.c_str()});
}

TEST(Pipeline, ScheduleOrders) {
  using A = PipelineAction;
  // 4 stages, 6 micro-batches. 1F1B: S - s - 1 warm-up forwards, then forward/backward pairs.
  EXPECT_EQ(schedule_actions(Schedule::one_f_one_b, 4, 0, 6),
            (std::vector<A>{{true, 0}, {true, 1}, {true, 2}, {true, 3}, {false, 0}, {true, 4}, {false, 1},
                            {true, 5}, {false, 2}, {false, 3}, {false, 4}, {false, 5}}));
  EXPECT_EQ(schedule_actions(Schedule::one_f_one_b, 4, 3, 3),
            (std::vector<A>{{true, 0}, {false, 0}, {true, 1}, {false, 1}, {true, 2}, {false, 2}}));
  // fewer micro-batches than warm-up slots
  EXPECT_EQ(schedule_actions(Schedule::one_f_one_b, 4, 0, 2),
            (std::vector<A>{{true, 0}, {true, 1}, {false, 0}, {false, 1}}));
  EXPECT_EQ(schedule_actions(Schedule::gpipe, 2, 1, 3),
            (std::vector<A>{{true, 0}, {true, 1}, {true, 2}, {false, 0}, {false, 1}, {false, 2}}));
}

TEST(Pipeline, OneStepGivesTheFullModelsLossesAndGradients) {
  for (const bool tied : {true, false}) {
    const io::HfModelConfig hf = tiny_config(4, tied);
    const std::vector<MicroBatch> micro_batches = make_micro_batches(kMicroBatches, 1);
    const auto full = make_model(hf);
    const std::vector<double> reference = reference_step(*full, micro_batches);
    NamedTensors reference_grads;
    for (const auto& [name, p] : full->named_parameters()) reference_grads.emplace_back(name, p.grad());
    for (Layout& layout : layouts()) {
      for (const Schedule schedule : kSchedules) {
        if (!tied && schedule == Schedule::gpipe) continue;  // untied: one schedule is enough
        const std::string what = layout.name + ", " + schedule_name(schedule) + (tied ? " tied" : " untied");
        const auto model = make_model(hf);
        const auto stage = make_stage(layout, *model);
        const PipelineStepResult result = run_pipeline_step(*stage, micro_batches, schedule);
        EXPECT_LE(max_relative_error(result.losses, reference), kTolerance) << what;
        expect_matches_on_rank0(stage->gather_full(gradients_of(*stage)), reference_grads, what);
        if (tied) expect_tied_copies_equal(*stage, /*gradients=*/true, what);
      }
    }
  }
}

TEST(Pipeline, TenAdamWStepsTrainLikeOneProcessAndGatherTheFullCheckpoint) {
  const io::HfModelConfig hf = tiny_config();
  std::vector<Layout> all = layouts();
  for (const Schedule schedule : kSchedules) {
    for (Layout& layout : all) {
      const std::string what = layout.name + ", " + schedule_name(schedule);
      const auto full = make_model(hf);
      const auto model = make_model(hf);
      const auto stage_ptr = make_stage(layout, *model);
      PipelineStage& stage = *stage_ptr;
      // Default groups: decay on matrices, none on embeddings by name, so both wte copies decay alike.
      train::AdamW reference_opt(train::make_param_groups(full->named_parameters()), {.lr = 1e-2f});
      train::AdamW opt(train::make_param_groups(stage.named_parameters()), {.lr = 1e-2f});
      // The same micro-batches every step, so the loss must fall: the steps change the weights.
      const std::vector<MicroBatch> micro_batches = make_micro_batches(kMicroBatches, 100);
      double worst = 0;
      std::vector<double> first_losses, last_losses;
      for (int step = 0; step < 10; ++step) {
        const std::vector<double> reference = reference_step(*full, micro_batches);
        reference_opt.step();
        reference_opt.zero_grad();
        const PipelineStepResult result = run_pipeline_step(stage, micro_batches, schedule);
        opt.step();
        opt.zero_grad();
        worst = std::max(worst, max_relative_error(result.losses, reference));
        (step == 0 ? first_losses : last_losses) = reference;
      }
      EXPECT_LE(worst, kTolerance) << what;
      EXPECT_LT(last_losses[0], first_losses[0] - 0.1) << what << ": the steps did not train";
      expect_tied_copies_equal(stage, /*gradients=*/false, what);
      // The tensor-parallel blocks round differently from the full model's (unfused LayerNorms, split
      // sums), and Adam turns rounding noise in near-zero gradients (q/k weights of near-uniform
      // attention) into steps of up to lr: measured up to 6e-5 of a tensor's scale. A part stepped or
      // gathered wrongly is off by ~lr = 1e-2 of weights of size ~0.1-1.
      const double tolerance = layout.tp == 0 ? kTolerance : 1e-3;
      const nn::StateDict reference_state = without_key_biases(full->state_dict());
      expect_matches_on_rank0(without_key_biases(stage.gather_full_state_dict()),
                              NamedTensors(reference_state.begin(), reference_state.end()), what + " checkpoint",
                              tolerance);
    }
  }
}

TEST(Pipeline, OneFOneBKeepsAtMostStagesMicroBatchesInFlightGPipeKeepsAll) {
  const int64_t micro_batches = 8;  // more than the 4 stages at 4 ranks, so the schedules differ
  const auto model = make_model(tiny_config());
  PipelineGpt2Stage stage(*model, world());
  const int stages = stage.stages();
  std::vector<size_t> peak_bytes;
  for (const Schedule schedule : kSchedules) {
    const PipelineStepResult result = run_pipeline_step(stage, make_micro_batches(micro_batches, 7), schedule);
    stage.zero_grad();
    peak_bytes.push_back(result.peak_bytes_in_use);
    std::vector<int64_t> per_stage(size_t(stages), -1);
    world().all_gather(&result.max_in_flight, per_stage.data(), 1, ElemType::i64);
    for (int s = 0; s < stages; ++s) {
      const int64_t expected =
          schedule == Schedule::gpipe ? micro_batches : std::min<int64_t>(stages - s, micro_batches);
      EXPECT_EQ(per_stage[size_t(s)], expected) << schedule_name(schedule) << " stage " << s;
    }
  }
  // Fewer micro-batches in flight is less memory only if each one's activations are freed after
  // its backward (every stage holds fewer under 1F1B here, as stages < micro_batches).
  EXPECT_LT(peak_bytes[1], peak_bytes[0]) << "stage " << stage.stage() << ": 1F1B peak " << peak_bytes[1]
                                          << " bytes, GPipe " << peak_bytes[0];
}

TEST(Pipeline, ScatterAndGatherOfAFullStateDictRoundTrip) {
  const io::HfModelConfig hf = tiny_config();
  const auto source = make_model(hf, 7);
  const nn::StateDict full = source->state_dict();
  const auto model = make_model(hf, 42);
  PipelineGpt2Stage stage(*model, world());
  // Only rank 0's dict is read.
  stage.load_full_state_dict(world().rank() == 0 ? full : nn::StateDict{});
  expect_matches_on_rank0(stage.gather_full_state_dict(), NamedTensors(full.begin(), full.end()), "round trip");
  expect_tied_copies_equal(stage, /*gradients=*/false, "loaded");
  // Every layout: rank 0's full tensors cut into each rank's parts and gathered back.
  for (Layout& layout : layouts()) {
    const auto split = make_stage(layout, *model)->scatter_full(world().rank() == 0 ? full : nn::StateDict{});
    expect_matches_on_rank0(make_stage(layout, *model)->gather_full(split), source->named_parameters(), layout.name);
  }
}

TEST(Pipeline, TensorParallelStagesRefuseAnIdOutsideTheVocabularyOnEveryStage) {
  const auto model = make_model(tiny_config());
  Tensor ids = ids_tensor(3);
  ids.narrow(1, 5, 1).fill_(kVocab);  // B x 1 ids past the end
  for (Layout& layout : layouts()) {
    if (layout.tp == 0) continue;
    const auto stage = make_stage(layout, *model);
    // Before any communication, so no rank is left waiting for one that failed.
    test::expect_mentions(test::error_message([&] { stage->forward(ids, Tensor()); }),
                          {("id " + std::to_string(kVocab)).c_str(), "flat position 5"});
  }
}

TEST(Pipeline, ScatterOfAStateDictMissingATensorFailsOnTheRanksThatNeedIt) {
  const io::HfModelConfig hf = tiny_config();
  const auto model = make_model(hf);
  nn::StateDict full = model->state_dict();
  full.erase("transformer.h.3.mlp.c_fc.weight");  // the last stage's
  for (Layout& layout : layouts()) {
    const auto stage = make_stage(layout, *model);
    const std::string message = test::error_message([&] { stage->scatter_full(full); });
    if (stage->is_first() || stage->is_last()) {
      test::expect_mentions(message, {"transformer.h.3.mlp.c_fc.weight", "no"});
    } else {
      EXPECT_EQ(message, "<nothing thrown>") << layout.name;
    }
  }
}

}  // namespace
}  // namespace ld::dist
