#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "dist/world.hpp"

namespace {

// One line on stderr and a non-zero exit; under mpirun the whole job ends with this rank's
// message (dist::abort_job), so no other rank waits for it in a collective.
int fail(const std::string& message, int exit_code) {
  if (ld::dist::world_size() > 1) ld::dist::abort_job(message, exit_code);
  std::fprintf(stderr, "liandan: %s\n", message.c_str());
  ld::dist::finalize();
  return exit_code;
}

}  // namespace

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
    ld::dist::init(&argc, &argv);
  } catch (const ld::Error& e) {
    std::fprintf(stderr, "liandan: error: %s\n", e.what());
    return 1;
  }
  try {
    ld::cli::run_selected(app);
  } catch (const ld::Error& e) {
    return fail(std::string("error: ") + e.what(), 1);
  } catch (const std::exception& e) {
    return fail(e.what(), 2);
  }
  ld::dist::finalize();
  return 0;
}
