// train.device: the names it takes, one clear error for the rest, and (on a machine or build without
// CUDA) a run asked to train on a GPU stops before it starts, naming the key. Training on a GPU
// itself is checked in tests/cuda/cuda_training_test.cpp (skipped without a device).
#include <gtest/gtest.h>

#include <string>

#include "backend/backend.hpp"
#include "test_util.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"
#include "train/trainer_fixture.hpp"

namespace ld::train {
namespace {

namespace fs = std::filesystem;

bool cuda_usable() {
  try {
    backend_for(Device{DeviceKind::cuda, 0});
    return true;
  } catch (const Error&) {
    return false;
  }
}

TEST(TrainDevice, CpuIsTheDefault) {
  EXPECT_EQ(TrainSection{}.device, "cpu");
  EXPECT_EQ(training_device(TrainSection{}), kCPU);
}

TEST(TrainDevice, AnUnknownNameIsOneClearError) {
  for (const char* name : {"gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:0x", "cpu:0", ""}) {
    TrainSection t;
    t.device = name;
    test::expect_mentions(test::error_message([&] { training_device(t); }),
                          {"train.device", "is not cpu, cuda or cuda:N"});
  }
}

TEST(TrainDevice, ACudaRunWithoutADeviceStopsBeforeItStarts) {
  if (cuda_usable()) GTEST_SKIP() << "this machine has a CUDA device: tests/cuda trains on it";
  TrainSection t;
  t.device = "cuda:1";
  test::expect_mentions(test::error_message([&] { training_device(t); }), {"train.device=cuda:1"});

  test::TempDir tmp("train_device");
  const fs::path data = fixture::make_dataset(tmp / "data");
  const RunConfig config =
      fixture::make_config(fixture::kGpt2Model, data, tmp / "run", {{"train.device", "cuda"}});
  test::expect_mentions(test::error_message([&] { pretrain(config, fixture::quiet()); }), {"train.device=cuda"});
  EXPECT_FALSE(fs::exists(tmp / "run"));  // nothing written
}

}  // namespace
}  // namespace ld::train
