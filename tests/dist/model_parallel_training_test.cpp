// Tensor and pipeline parallel pretraining through the trainer (dist.tp, dist.pp, alone, together
// and with data parallel) against one process: the same losses and gradient norms over 10 steps, and
// checkpoints of a tensor-parallel run and of a tp x pp run that resume in one process.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dist/dist_fixture.hpp"
#include "dist/local_communicator.hpp"
#include "dist/world.hpp"
#include "train/checkpoint.hpp"

namespace ld::dist {
namespace {

using namespace fixture;

// Every rank's own one-process run of the same global batch, and the shared dataset.
struct Reference {
  explicit Reference(Communicator& w) : shared(w) {
    data = shared.path() / "data";
    if (w.rank() == 0) train::fixture::make_dataset(data);
    w.barrier();
    LocalCommunicator alone;
    result = run(config(data, own / "ref", 1, 0), alone);
  }
  SharedDir shared;
  fs::path data;
  test::TempDir own{"liandan_mp_ref"};
  train::TrainResult result;
};

TEST(ModelParallelTraining, TensorParallelAloneAndWithDataParallelMatchOneProcess) {
  Communicator& w = world();
  if (w.size() != 2 && w.size() != 4) GTEST_SKIP() << "needs 2 ranks (tp 2) or 4 (dp 2 x tp 2)";
  Reference ref(w);
  const int dp = w.size() / 2;
  const train::TrainResult r = run(config(ref.data, ref.shared.path() / "tp", dp, 0, {{"dist.tp", "2"}}), w);
  expect_same_losses(r.losses, ref.result.losses, "dp " + std::to_string(dp) + " x tp 2");
  if (dp == 1) return;
  const train::TrainResult zero = run(config(ref.data, ref.shared.path() / "tp_zero1", dp, 1, {{"dist.tp", "2"}}), w);
  expect_same_losses(zero.losses, ref.result.losses, "dp 2 x tp 2, ZeRO-1");
}

TEST(ModelParallelTraining, PipelineBothSchedulesAloneAndWithDataParallelMatchOneProcess) {
  Communicator& w = world();
  if (w.size() != 2 && w.size() != 4) GTEST_SKIP() << "needs 2 ranks (pp 2) or 4 (dp 2 x pp 2)";
  Reference ref(w);
  const int dp = w.size() / 2;
  for (const std::string schedule : {"gpipe", "1f1b"}) {
    const train::TrainResult r =
        run(config(ref.data, ref.shared.path() / schedule, dp, 0, {{"dist.pp", "2"}, {"dist.schedule", schedule}}), w);
    expect_same_losses(r.losses, ref.result.losses, "dp " + std::to_string(dp) + " x pp 2, " + schedule);
  }
  if (dp == 1) return;
  const train::TrainResult zero = run(config(ref.data, ref.shared.path() / "pp_zero2", dp, 2, {{"dist.pp", "2"}}), w);
  expect_same_losses(zero.losses, ref.result.losses, "dp 2 x pp 2, 1f1b, ZeRO-2");
}

TEST(ModelParallelTraining, TensorParallelInsidePipelineStagesBothSchedulesMatchOneProcess) {
  Communicator& w = world();
  if (w.size() != 4 && w.size() != 8) GTEST_SKIP() << "needs 4 ranks (tp 2 x pp 2) or 8 (dp 2 x tp 2 x pp 2)";
  Reference ref(w);
  const int dp = w.size() / 4;
  for (const std::string schedule : {"gpipe", "1f1b"}) {
    const train::RunConfig c = config(ref.data, ref.shared.path() / schedule, dp, 0,
                                      {{"dist.tp", "2"}, {"dist.pp", "2"}, {"dist.schedule", schedule}});
    expect_same_losses(run(c, w).losses, ref.result.losses,
                       "dp " + std::to_string(dp) + " x tp 2 x pp 2, " + schedule);
  }
}

// The second half of the reference run, from its step-5 checkpoint.
std::vector<double> after_step5(const Reference& ref) {
  std::vector<double> want(ref.result.losses.begin() + 5, ref.result.losses.begin() + 10);
  want.insert(want.end(), ref.result.losses.begin() + 15, ref.result.losses.end());
  return want;
}

// A checkpoint written by `layout` (dist overrides) on every rank of the world resumes in one process
// like the one-process run's own.
void expect_checkpoint_resumes_alone(const std::vector<train::Override>& layout, const std::string& what,
                                     int data_ranks = 1, int zero = 0) {
  Communicator& w = world();
  Reference ref(w);
  run(config(ref.data, ref.shared.path() / "mp", data_ranks, zero, layout), w);
  const fs::path step5 = ref.shared.path() / "mp" / train::kCheckpointsDir / train::checkpoint_name(5);
  LocalCommunicator alone;
  expect_same_losses(run(config(ref.data, ref.own / "resumed", 1, 0), alone, step5).losses, after_step5(ref),
                     what + " resumed alone");
}

TEST(ModelParallelTraining, ATensorParallelCheckpointResumesInOneProcess) {
  if (world().size() != 2) GTEST_SKIP() << "needs 2 ranks";
  expect_checkpoint_resumes_alone({{"dist.tp", "2"}}, "tp 2");
}

TEST(ModelParallelTraining, ATensorAndPipelineParallelCheckpointResumesInOneProcess) {
  if (world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  expect_checkpoint_resumes_alone({{"dist.tp", "2"}, {"dist.pp", "2"}}, "tp 2 x pp 2");
}

TEST(ModelParallelTraining, AZeroShardedPipelineCheckpointResumesInOneProcess) {
  if (world().size() != 4) GTEST_SKIP() << "needs 4 ranks";
  expect_checkpoint_resumes_alone({{"dist.pp", "2"}}, "dp 2 x pp 2, ZeRO-2", 2, 2);
}

TEST(ModelParallelTraining, UnsupportedLayoutsAreClearErrorsOnEveryRank) {
  Communicator& w = world();
  if (w.size() != 2) GTEST_SKIP() << "needs 2 ranks";
  SharedDir shared(w);
  const fs::path data = shared.path() / "data";
  if (w.rank() == 0) train::fixture::make_dataset(data);
  w.barrier();
  auto error_of = [&](const train::RunConfig& c) { return test::error_message([&] { run(c, w); }); };
  test::expect_mentions(error_of(config(data, shared.path() / "a", 1, 0, {{"dist.tp", "4"}})),
                        {"dist.tp=4", "does not divide", "2 ranks"});
  test::expect_mentions(error_of(config(data, shared.path() / "b", 1, 0, {{"dist.pp", "2"}, {"train.precision", "fp16"}})),
                        {"dist.pp=2", "fp16"});
  train::RunConfig llama = train::fixture::make_config(train::fixture::kLlamaModel, data, shared.path() / "c",
                                                       {{"dist.pp", "2"}, {"eval.every", "0"}});
  test::expect_mentions(error_of(llama), {"dense GPT-2", "llama"});
}

}  // namespace
}  // namespace ld::dist
