// `liandan convert --from llama2c IN.bin --to hf OUT_DIR [--force]`: import a checkpoint of another
// project into a Hugging Face model folder. Only llama2.c -> hf for now; the work is in io/llama2c.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/llama2c.hpp"

namespace ld::cli {

namespace {

struct ConvertArgs {
  std::string from, to, input, output;
  bool force = false;
};

void run_convert(const ConvertArgs& a) {
  LD_CHECK(a.from == "llama2c", "convert: --from '", a.from, "' is not supported (supported: llama2c)");
  LD_CHECK(a.to == "hf", "convert: --to '", a.to, "' is not supported (supported: hf)");
  io::convert_llama2c_to_hf(a.input, a.output, a.force);
  std::printf("wrote %s (Hugging Face LlamaForCausalLM folder)\n", a.output.c_str());
}

}  // namespace

void add_convert_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("convert", "Convert a checkpoint between formats (llama2.c .bin -> Hugging Face folder)");
  auto args = std::make_shared<ConvertArgs>();
  cmd->add_option("--from", args->from, "input format: llama2c")->required();
  cmd->add_option("input", args->input, "input checkpoint (llama2.c .bin)")->required();
  cmd->add_option("--to", args->to, "output format: hf")->required();
  cmd->add_option("output", args->output, "output folder (must not exist unless --force)")->required();
  cmd->add_flag("--force", args->force, "replace an existing output folder (only once the new one is complete)");
  run = [args] { run_convert(*args); };
}

}  // namespace ld::cli
