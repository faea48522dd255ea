// Mixed-precision pretraining (train.precision bf16 / fp16, fp32 master weights) on a tiny GPT-2 and
// a tiny dataset with a learnable pattern: bf16 learns and stays close to the fp32 run, a bf16 resume
// is exact, and fp16 with a too-large loss scale skips the overflowing steps (halving the scale) and
// then trains.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"
#include "test_util.hpp"
#include "train/trainer_fixture.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"

namespace ld::train {
namespace {

namespace fs = std::filesystem;

using namespace fixture;

// The trainer tests' tiny GPT-2 on the counting dataset, without evaluation or periodic checkpoints.
RunConfig tiny_gpt2(const fs::path& data, const fs::path& run, std::vector<Override> overrides) {
  overrides.insert(overrides.begin(), {{"eval.every", "0"}, {"checkpoint.every", "0"}});
  return make_config(kGpt2Model, data, run, overrides);
}

TEST(MixedPrecision, Bf16LearnsAndTracksTheFp32Run) {
  test::TempDir tmp("mixed_bf16");
  const fs::path data = make_dataset(tmp / "data");
  const TrainResult fp32 = pretrain(tiny_gpt2(data, tmp / "fp32", {}), quiet());
  const TrainResult bf16 = pretrain(tiny_gpt2(data, tmp / "bf16", {{"train.precision", "bf16"}}), quiet());
  ASSERT_EQ(bf16.losses.size(), 30u);
  EXPECT_NE(bf16.losses, fp32.losses);  // the products did round
  // bf16 keeps 8 significant bits per operand; measured, the runs differ by at most 0.0025 over the
  // 30 steps (losses 2.77 -> 0.15). The bound leaves 4x room; a run that did not round, or rounded
  // the f32 master weights themselves, would fail one side or the other.
  EXPECT_NEAR(bf16.losses[0], fp32.losses[0], 1e-3);
  for (size_t i = 0; i < 30; ++i) EXPECT_NEAR(bf16.losses[i], fp32.losses[i], 0.01) << "step " << i + 1;
  EXPECT_LT(bf16.losses.back(), 0.8);  // far below ln 16: it learned the pattern
}

// 6 steps at once, or 3, a stop and a resume for 3 more: the same bf16 losses, bit for bit.
TEST(MixedPrecision, Bf16ResumeIsExact) {
  test::TempDir tmp("mixed_resume");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> overrides = {{"train.precision", "bf16"}, {"train.max_steps", "6"},
                                           {"train.grad_accum", "2"}};
  const TrainResult whole = pretrain(tiny_gpt2(data, tmp / "whole", overrides), quiet());
  const RunConfig config = tiny_gpt2(data, tmp / "split", overrides);
  TrainOptions first = quiet();
  first.on_step = [](const StepReport& r) {
    if (r.step == 3) request_stop();
  };
  const TrainResult part1 = pretrain(config, first);
  ASSERT_EQ(part1.step, 3);
  TrainOptions second = quiet();
  second.resume = tmp / "split";
  const TrainResult part2 = pretrain(config, second);
  ASSERT_EQ(whole.losses.size(), 6u);
  ASSERT_EQ(part2.losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(part1.losses[i], whole.losses[i]) << "step " << i + 1;
    EXPECT_EQ(part2.losses[i], whole.losses[i + 3]) << "step " << i + 4;
  }
}

// train.bf16_weights (on by default under bf16): the products read the bf16 copies AdamW writes
// instead of rounding the f32 weights themselves; to nearest, that is the same rounding.
TEST(MixedPrecision, Bf16WorkingWeightsChangeNoBit) {
  test::TempDir tmp("mixed_working");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> bf16 = {{"train.precision", "bf16"}, {"train.max_steps", "8"}};
  std::vector<Override> off = bf16;
  off.push_back({"train.bf16_weights", "false"});
  const TrainResult with = pretrain(tiny_gpt2(data, tmp / "with", bf16), quiet());
  const TrainResult without = pretrain(tiny_gpt2(data, tmp / "without", off), quiet());
  ASSERT_EQ(with.losses.size(), 8u);
  EXPECT_EQ(with.losses, without.losses);
}

// Stochastically rounded copies: another run than round-to-nearest's that still learns, and a stop
// and a resume give the uninterrupted run's losses bit for bit (the copies are remade exactly).
TEST(MixedPrecision, StochasticRoundingLearnsAndResumesExactly) {
  test::TempDir tmp("mixed_sr");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> sr = {{"train.precision", "bf16"}, {"train.stochastic_rounding", "true"}};
  const TrainResult nearest = pretrain(tiny_gpt2(data, tmp / "nearest", {{"train.precision", "bf16"}}), quiet());
  const TrainResult stochastic = pretrain(tiny_gpt2(data, tmp / "sr", sr), quiet());
  ASSERT_EQ(stochastic.losses.size(), 30u);
  EXPECT_NE(stochastic.losses[0], nearest.losses[0]) << "even the first forward reads stochastic copies";
  EXPECT_NEAR(stochastic.losses[0], nearest.losses[0], 1e-3);
  EXPECT_LT(stochastic.losses.back(), 0.8);

  std::vector<Override> six = sr;
  six.push_back({"train.max_steps", "6"});
  const TrainResult whole = pretrain(tiny_gpt2(data, tmp / "whole", six), quiet());
  const RunConfig config = tiny_gpt2(data, tmp / "split", six);
  TrainOptions first = quiet();
  first.on_step = [](const StepReport& r) {
    if (r.step == 3) request_stop();
  };
  ASSERT_EQ(pretrain(config, first).step, 3);
  TrainOptions second = quiet();
  second.resume = tmp / "split";
  const TrainResult rest = pretrain(config, second);
  ASSERT_EQ(rest.losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(rest.losses[i], whole.losses[i + 3]) << "step " << i + 4;
}

TEST(MixedPrecision, StochasticRoundingNeedsBf16WorkingWeights) {
  test::TempDir tmp("mixed_sr_error");
  const fs::path data = make_dataset(tmp / "data");
  test::expect_mentions(test::error_message([&] {
                          pretrain(tiny_gpt2(data, tmp / "run", {{"train.stochastic_rounding", "true"}}), quiet());
                        }),
                        {"train.stochastic_rounding", "train.precision is fp32"});
  EXPECT_FALSE(fs::exists(tmp / "run" / "metrics.jsonl")) << "a run that cannot start leaves no trace";
}

std::vector<nlohmann::json> train_lines(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["type"] == "train") lines.push_back(j);
  }
  return lines;
}

// A loss scale of 2^24 makes the scaled gradients overflow fp16 (65504): those steps are skipped
// and halve the scale, until it fits; then the run trains.
TEST(MixedPrecision, Fp16SkipsOverflowingStepsThenTrains) {
  test::TempDir tmp("mixed_fp16");
  const fs::path data = make_dataset(tmp / "data");
  TrainOptions o = quiet();
  o.initial_loss_scale = double(1 << 24);
  std::vector<StepReport> reports;
  o.on_step = [&](const StepReport& r) { reports.push_back(r); };
  const TrainResult result = pretrain(tiny_gpt2(data, tmp / "run", {{"train.precision", "fp16"}}), o);
  ASSERT_EQ(reports.size(), 30u);
  size_t skipped = 0;
  while (skipped < reports.size() && reports[skipped].skipped) ++skipped;
  EXPECT_GE(skipped, 1u);
  EXPECT_LE(skipped, 12u);
  for (size_t i = skipped; i < reports.size(); ++i) EXPECT_FALSE(reports[i].skipped) << "step " << i + 1;
  const auto lines = train_lines(tmp / "run" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 30u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["skipped"].get<bool>(), reports[i].skipped) << "step " << i + 1;
    // the scale after step i: halved by each skip so far, unchanged since (growth takes 2000 steps)
    const double want = double(1 << 24) / double(1 << std::min(i + 1, skipped));
    EXPECT_EQ(lines[i]["loss_scale"].get<double>(), want) << "step " << i + 1;
  }
  EXPECT_LT(result.losses.back(), 0.8 + 0.5 * double(skipped) / 30);  // trained despite the lost steps
}

}  // namespace
}  // namespace ld::train
