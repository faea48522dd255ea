#pragma once
// Each command lives in its own file and registers itself here: it adds a CLI11 subcommand with its
// options and a function to run when that subcommand is selected.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace ld::cli {

// Adds one subcommand to `parent` and sets `run` to what it does when selected.
using AddCommand = std::function<void(CLI::App& parent, std::function<void()>& run)>;

// A command whose work is in its subcommands (`liandan data prepare`, `liandan metrics bleu`):
// registers each of them and sets `run` to run the one that was parsed.
void add_command_group(CLI::App& app, std::function<void()>& run, const std::string& name,
                       const std::string& description, const std::vector<AddCommand>& subcommands);

void register_commands(CLI::App& app);
void run_selected(CLI::App& app);

// Called by register_commands; each defined in cmd_<name>.cpp.
void add_convert_command(CLI::App& app, std::function<void()>& run);
void add_data_command(CLI::App& app, std::function<void()>& run);
void add_demo_command(CLI::App& app, std::function<void()>& run);
void add_eval_command(CLI::App& app, std::function<void()>& run);
void add_export_command(CLI::App& app, std::function<void()>& run);
void add_finetune_command(CLI::App& app, std::function<void()>& run);
void add_generate_command(CLI::App& app, std::function<void()>& run);
void add_info_command(CLI::App& app, std::function<void()>& run);
void add_metrics_command(CLI::App& app, std::function<void()>& run);
void add_op_command(CLI::App& app, std::function<void()>& run);
void add_plan_command(CLI::App& app, std::function<void()>& run);
void add_plot_command(CLI::App& app, std::function<void()>& run);
void add_pretrain_command(CLI::App& app, std::function<void()>& run);
void add_tokenizer_command(CLI::App& app, std::function<void()>& run);
void add_tokenizer_train(CLI::App& tokenizer_cmd, std::function<void()>& run);  // subcommand of tokenizer
void add_data_augment(CLI::App& data_cmd, std::function<void()>& run);  // subcommand of data

}  // namespace ld::cli
