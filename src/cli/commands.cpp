#include "cli/commands.hpp"

#include <map>
#include <memory>

namespace ld::cli {

namespace {

using Runners = std::map<CLI::App*, std::function<void()>>;

Runners& runners() {
  static Runners r;
  return r;
}

// Adds a subcommand to `app` and files its runner under it.
void add_to(CLI::App& app, Runners& into, const AddCommand& add_command) {
  std::function<void()> run;
  size_t before = app.get_subcommands({}).size();
  add_command(app, run);
  auto subs = app.get_subcommands({});
  if (subs.size() > before) into[subs.back()] = std::move(run);
}

void run_parsed(const Runners& from) {
  for (auto& [sub, run] : from)
    if (sub->parsed() && run) run();
}

void add(CLI::App& app, const AddCommand& add_command) { add_to(app, runners(), add_command); }

}  // namespace

void add_command_group(CLI::App& app, std::function<void()>& run, const std::string& name,
                       const std::string& description, const std::vector<AddCommand>& subcommands) {
  CLI::App* cmd = app.add_subcommand(name, description);
  cmd->require_subcommand(1);
  auto group = std::make_shared<Runners>();
  for (const AddCommand& add_sub : subcommands) add_to(*cmd, *group, add_sub);
  run = [group] { run_parsed(*group); };
}

void register_commands(CLI::App& app) {
  add(app, add_convert_command);
  add(app, add_data_command);
  add(app, add_demo_command);
  add(app, add_eval_command);
  add(app, add_export_command);
  add(app, add_finetune_command);
  add(app, add_generate_command);
  add(app, add_info_command);
  add(app, add_metrics_command);
  add(app, add_op_command);
  add(app, add_plan_command);
  add(app, add_plot_command);
  add(app, add_pretrain_command);
  add(app, add_tokenizer_command);
}

void run_selected(CLI::App&) { run_parsed(runners()); }

}  // namespace ld::cli
