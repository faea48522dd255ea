// `liandan export --model BASE --adapter DIR --merge --out DIR`: merges a LoRA adapter into its base
// model's weights and writes a plain Hugging Face folder (config.json, model.safetensors, the base's
// tokenizer files) that loads and generates with no adapter (peft::save_merged_model). Only LoRA
// merges: a prompt or a Houlsby adapter adds computation the base weights cannot hold.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "models/causal_lm.hpp"
#include "peft/peft_io.hpp"

namespace ld::cli {

namespace {

struct ExportArgs {
  std::string model, adapter, out;
  bool merge = false;
  bool force = false;
};

void run_export(const ExportArgs& a) {
  LD_CHECK(a.merge, "export: --merge is required (the only export so far: a LoRA adapter merged into its base)");
  auto model = models::load_causal_lm(a.model);
  peft::LoadedAdapter loaded = peft::load_adapter(*model, a.adapter);
  LD_CHECK(loaded.peft_type == "LORA", a.adapter, ": a ", loaded.peft_type,
           " adapter cannot be merged into the base weights (only LoRA can); use it with --adapter instead");
  peft::save_merged_model(*model, loaded.lora, a.out, a.force, a.model);
  std::printf("merged %s into %s: %s\n", a.adapter.c_str(), a.model.c_str(), a.out.c_str());
}

}  // namespace

void add_export_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd =
      app.add_subcommand("export", "Write a Hugging Face folder from a base model and a LoRA adapter (--merge)");
  auto a = std::make_shared<ExportArgs>();
  cmd->add_option("--model", a->model, "base model folder (config.json, model.safetensors, tokenizer)")->required();
  cmd->add_option("--adapter", a->adapter, "LoRA adapter folder (PEFT layout)")->required();
  cmd->add_option("--out", a->out, "the folder to write")->required();
  cmd->add_flag("--merge", a->merge, "merge the adapter into the base weights");
  cmd->add_flag("--force", a->force, "replace --out if it exists");
  run = [a] { run_export(*a); };
}

}  // namespace ld::cli
