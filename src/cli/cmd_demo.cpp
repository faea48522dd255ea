// placeholder: the demo trains a 2-layer GPT on generated data once the ops exist
#include "cli/commands.hpp"
#include "core/error.hpp"
namespace ld::cli {
void add_demo_command(CLI::App& app, std::function<void()>& run) {
  app.add_subcommand("demo", "Train a tiny 2-layer GPT on generated data and show the loss falling");
  run = [] { LD_FAIL("demo: not implemented yet"); };
}
}  // namespace ld::cli
