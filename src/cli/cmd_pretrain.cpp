// `liandan pretrain --config FILE [--resume DIR] [--peak-tflops X] [--section.key=value ...]`:
// pretrains the model a run configuration describes on a prepared dataset (train/trainer.hpp).
// Ctrl-C (or SIGTERM) writes a checkpoint after the current step and stops; a second Ctrl-C ends at
// once. Resume with --resume RUN_DIR (its newest checkpoint) or --resume RUN_DIR/checkpoints/step-N.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "dist/world.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"

namespace ld::cli {

namespace {

struct PretrainOptions {
  std::string config;
  std::string resume;
  double peak_tflops = 0;
};

void run_pretrain(const PretrainOptions& o, const std::vector<std::string>& extras) {
  LD_CHECK(!o.config.empty(), "pretrain: --config FILE is required (see docs/config.md)");
  const train::RunConfig config = train::load_run_config(o.config, train::parse_overrides(extras));
  train::TrainOptions options;
  options.resume = o.resume;
  options.peak_tflops = o.peak_tflops;
  train::StopOnSignals signals;
  const train::TrainResult result = train::pretrain(config, options);
  if (result.interrupted && dist::is_main_rank())
    std::printf("interrupted at step %lld; continue with: liandan pretrain --config %s --resume %s\n",
                (long long)result.step, o.config.c_str(), config.output_dir.c_str());
}

}  // namespace

void add_pretrain_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("pretrain", "Pretrain a causal or masked language model on a prepared dataset");
  auto o = std::make_shared<PretrainOptions>();
  cmd->add_option("--config", o->config, "run configuration (YAML; see docs/config.md)");
  cmd->add_option("--resume", o->resume, "continue from a checkpoint folder, or a run folder's newest checkpoint");
  cmd->add_option("--peak-tflops", o->peak_tflops,
                  "peak FLOP/s of this machine in TFLOP/s, to report MFU (none is assumed on the CPU)");
  cmd->allow_extras();  // --section.key=value overrides
  cmd->footer("Overrides: --section.key=value after the options, e.g. --train.lr=3e-4 --train.max_steps=200");
  run = [o, cmd] { run_pretrain(*o, cmd->remaining()); };
}

}  // namespace ld::cli
