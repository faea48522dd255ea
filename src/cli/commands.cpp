#include "cli/commands.hpp"

#include <map>

namespace ld::cli {

namespace {
std::map<CLI::App*, std::function<void()>>& runners() {
  static std::map<CLI::App*, std::function<void()>> r;
  return r;
}

template <typename Add>
void add(CLI::App& app, Add add_command) {
  std::function<void()> run;
  size_t before = app.get_subcommands({}).size();
  add_command(app, run);
  auto subs = app.get_subcommands({});
  if (subs.size() > before) runners()[subs.back()] = std::move(run);
}
}  // namespace

void register_commands(CLI::App& app) {
  add(app, add_convert_command);
  add(app, add_data_command);
  add(app, add_demo_command);
  add(app, add_eval_command);
  add(app, add_generate_command);
  add(app, add_info_command);
  add(app, add_metrics_command);
  add(app, add_op_command);
  add(app, add_plan_command);
  add(app, add_plot_command);
  add(app, add_pretrain_command);
  add(app, add_tokenizer_command);
}

void run_selected(CLI::App& app) {
  for (auto& [sub, run] : runners())
    if (sub->parsed() && run) run();
}

}  // namespace ld::cli
