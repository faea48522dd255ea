// `liandan finetune --config FILE [--resume DIR] [--section.key=value ...]`: fine-tunes the Hugging
// Face folder model.from by finetune.method (full | lora | adapter | prompt) on finetune.task (sft |
// clm) (tune/finetune.hpp, docs/finetuning.md). Ctrl-C (or SIGTERM) writes a checkpoint after the
// current step and stops; --resume RUN_DIR continues from its newest checkpoint.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "dist/world.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"
#include "tune/finetune.hpp"

namespace ld::cli {

namespace {

struct FinetuneOptions {
  std::string config;
  std::string resume;
};

void run_finetune(const FinetuneOptions& o, const std::vector<std::string>& extras) {
  LD_CHECK(!o.config.empty(), "finetune: --config FILE is required (see docs/finetuning.md)");
  const train::RunConfig config = train::load_run_config(o.config, train::parse_overrides(extras));
  train::TrainOptions options;
  options.resume = o.resume;
  train::StopOnSignals signals;
  const train::TrainResult result = tune::finetune(config, options);
  if (result.interrupted && dist::is_main_rank())
    std::printf("interrupted at step %lld; continue with: liandan finetune --config %s --resume %s\n",
                (long long)result.step, o.config.c_str(), config.output_dir.c_str());
}

}  // namespace

void add_finetune_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand(
      "finetune", "Fine-tune a Hugging Face causal LM folder: full, LoRA, adapter or prompt tuning (SFT or causal LM)");
  auto o = std::make_shared<FinetuneOptions>();
  cmd->add_option("--config", o->config, "run configuration (YAML; see docs/finetuning.md)");
  cmd->add_option("--resume", o->resume, "continue from a checkpoint folder, or a run folder's newest checkpoint");
  cmd->allow_extras();  // --section.key=value overrides
  cmd->footer("Overrides: --section.key=value after the options, e.g. --finetune.method=lora --lora.r=16");
  run = [o, cmd] { run_finetune(*o, cmd->remaining()); };
}

}  // namespace ld::cli
