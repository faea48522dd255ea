#pragma once
// What the distributed trainer tests share: a folder every rank sees, the tiny GPT-2 run of
// tests/train/trainer_fixture.hpp as 10 checkpointed steps, a run on a given communicator that
// returns its losses then its gradient norms, and their comparison with one process's.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "dist/communicator.hpp"
#include "models/tiny_transformer.hpp"
#include "test_util.hpp"
#include "train/trainer.hpp"
#include "train/trainer_fixture.hpp"

namespace ld::dist::fixture {

namespace fs = std::filesystem;
using train::fixture::kGpt2Model;

inline constexpr int kGlobalBatch = 4;

// The same string on every rank of comm (rank 0's).
inline std::string broadcast_string(Communicator& comm, std::string s) {
  int64_t length = int64_t(s.size());
  comm.broadcast(&length, 1, ElemType::i64, 0);
  s.resize(size_t(length));
  comm.broadcast(s.data(), length, ElemType::u8, 0);
  return s;
}

// A folder every rank of `comm` sees (rank 0 makes it; removed when rank 0's copy goes away,
// after every rank is done with it).
class SharedDir {
 public:
  explicit SharedDir(Communicator& comm) : comm_(comm) {
    std::string path;
    if (comm.rank() == 0) dir_.emplace("liandan_dist"), path = dir_->path().string();
    path_ = broadcast_string(comm, path);
  }
  ~SharedDir() { comm_.barrier(); }
  const fs::path& path() const { return path_; }

 private:
  Communicator& comm_;
  std::optional<test::TempDir> dir_;
  fs::path path_;
};

// 10 steps of 2 micro-batches of kGlobalBatch / data_ranks windows, checkpoints at 5 and 10.
inline train::RunConfig config(const fs::path& data, const fs::path& run, int data_ranks, int zero,
                               std::vector<train::Override> more = {}) {
  std::vector<train::Override> overrides = {
      {"train.batch_size", std::to_string(kGlobalBatch / data_ranks)}, {"train.grad_accum", "2"},
      {"train.max_steps", "10"}, {"train.weight_decay", "0.1"}, {"train.grad_clip", "0.5"}, {"eval.every", "0"},
      {"checkpoint.every", "5"}, {"checkpoint.keep_last", "0"}, {"dist.zero", std::to_string(zero)},
      {"dist.bucket_mb", "0.001"}};
  overrides.insert(overrides.end(), more.begin(), more.end());
  return train::fixture::make_config(kGpt2Model, data, run, overrides);
}

// The losses, then the gradient norms (AdamW would hide a gradient off by a constant factor from
// the losses; the norm shows it).
inline train::TrainResult run(const train::RunConfig& c, Communicator& comm, const fs::path& resume = {}) {
  train::TrainOptions o = train::fixture::quiet();
  o.communicator = &comm;
  o.resume = resume;
  std::vector<double> norms;
  o.on_step = [&](const train::StepReport& r) { norms.push_back(r.grad_norm); };
  train::TrainResult result = train::pretrain(c, o);
  result.losses.insert(result.losses.end(), norms.begin(), norms.end());
  return result;
}

inline void expect_same_losses(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-5 * std::abs(want[i])) << what << (i < got.size() / 2 ? ", loss " : ", norm ")
                                                            << i % (got.size() / 2) + 1;
}


// A 2-layer GPT-2 of width 32 (vocabulary 64, 16 positions): the model- and data-parallel tests'.
inline models::StackConfig tiny_stack() {
  models::StackConfig c;
  c.kind = models::StackKind::gpt2;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 4;
  c.n_embd = 32;
  c.vocab_size = 64;
  c.n_positions = 16;
  c.intermediate_size = 128;
  return c;
}

}  // namespace ld::dist::fixture
