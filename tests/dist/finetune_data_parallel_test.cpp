// `liandan finetune` (SFT, LoRA) data parallel against one process: every rank trains its rows of
// the global batch with its loss weighted by its share of the batch's trained tokens, so the losses
// and gradient norms equal one process's though the ranks' rows hold different numbers of tokens.
#include <gtest/gtest.h>

#include "dist/dist_fixture.hpp"
#include "dist/local_communicator.hpp"
#include "dist/world.hpp"
#include "tune/finetune.hpp"
#include "tune/finetune_task_fixture.hpp"
#include "tune/synthetic_tasks.hpp"

namespace ld::dist {
namespace {

using namespace fixture;

train::RunConfig sft_config(const fs::path& train_file, const fs::path& out, int ranks, const std::string& method) {
  std::string yaml = "model: {from: " + tune::test::task_fixture().base.string() + "}\n";
  yaml += "finetune: {method: " + method + ", task: sft}\ndata: {train: " + train_file.string() + "}\n";
  yaml += "eval: {every: 0}\ncheckpoint: {every: 0}\noutput_dir: " + out.string() + "\n";
  yaml += "train: {batch_size: " + std::to_string(8 / ranks) + ", grad_accum: 2, seq_len: 32, max_steps: 6, " +
          "lr: 3e-3, warmup_steps: 0, schedule: constant, weight_decay: 0, threads: 1}\n";
  if (method == "lora") yaml += "lora: {dropout: 0}\n";  // each rank would draw its own dropout masks
  return train::parse_run_config(yaml, "sft.yaml", {});
}

std::vector<double> finetune_on(const train::RunConfig& c, Communicator& comm) {
  train::TrainOptions o;
  o.print = false;
  o.communicator = &comm;
  std::vector<double> norms;
  o.on_step = [&](const train::StepReport& r) { norms.push_back(r.grad_norm); };
  std::vector<double> out = tune::finetune(c, o).losses;
  out.insert(out.end(), norms.begin(), norms.end());
  return out;
}

TEST(FinetuneDataParallel, SftWithUnevenTokensPerRankMatchesOneProcess) {
  Communicator& w = world();
  if (w.size() != 2 && w.size() != 4) GTEST_SKIP() << "needs 2 or 4 ranks";
  test::TempDir own("liandan_sft_dp");
  // Reversal prompts of varying length: the ranks' rows hold different numbers of trained tokens.
  tune::write_alpaca_jsonl(own / "train.jsonl", tune::reversal_task(64, 3));
  SharedDir shared(w);
  LocalCommunicator alone;
  for (const std::string method : {"lora", "full"}) {
    const std::vector<double> one = finetune_on(sft_config(own / "train.jsonl", own / ("one_" + method), 1, method), alone);
    const std::vector<double> many =
        finetune_on(sft_config(own / "train.jsonl", shared.path() / method, w.size(), method), w);
    expect_same_losses(many, one, "sft " + method + " on " + std::to_string(w.size()) + " ranks");
  }
}

}  // namespace
}  // namespace ld::dist
