#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"liandan: train, fine-tune, align, evaluate, compress and serve language models"};
  app.set_version_flag("--version", std::string("liandan ") + LIANDAN_VERSION);
  app.require_subcommand(1);
  ld::cli::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    ld::cli::run_selected(app);
  } catch (const ld::Error& e) {
    std::fprintf(stderr, "liandan: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "liandan: %s\n", e.what());
    return 2;
  }
  return 0;
}
