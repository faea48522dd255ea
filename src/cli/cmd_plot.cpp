// `liandan plot RUN_DIR [--smooth 0.9] [--log-y auto|on|off]`: draw RUN_DIR/metrics.jsonl as
// loss.svg/loss.png (train and validation loss against step) and lr.svg/lr.png (learning rate
// against step) in the run folder. Warnings (an interrupted last line skipped, NaN losses dropped)
// go to stderr; the written paths to stdout.
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "cli/commands.hpp"
#include "plot/run_plots.hpp"

namespace ld::cli {

namespace {

struct PlotArgs {
  std::string run_dir;
  double smooth = 0;
  std::string log_y = "auto";
  int width = 800, height = 500;
};

void run_plot(const PlotArgs& a) {
  const std::map<std::string, plot::LogY> modes{{"auto", plot::LogY::kAuto}, {"on", plot::LogY::kOn}, {"off", plot::LogY::kOff}};
  const plot::PlotOptions opt{.smooth = a.smooth, .log_y = modes.at(a.log_y), .width = a.width, .height = a.height};
  const plot::PlotReport report = plot::plot_run(a.run_dir, opt);
  for (const std::string& w : report.warnings) std::cerr << "liandan: warning: " << w << "\n";
  for (const auto& path : report.written) std::cout << path.string() << "\n";
}

}  // namespace

void add_plot_command(CLI::App& app, std::function<void()>& run) {
  auto a = std::make_shared<PlotArgs>();
  auto* cmd = app.add_subcommand("plot", "draw a run's metrics.jsonl as loss and learning-rate charts (SVG and PNG)");
  cmd->add_option("run_dir", a->run_dir, "run folder holding metrics.jsonl; the charts are written next to it")->required();
  cmd->add_option("--smooth", a->smooth, "EMA weight for the train loss in [0, 1), e.g. 0.9; the raw curve stays faint (default 0: off)")
      ->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--log-y", a->log_y, "log-scale loss axis: auto (when losses span over a decade), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--width", a->width, "image width in pixels (default 800)")->check(CLI::Range(320, 4000));
  cmd->add_option("--height", a->height, "image height in pixels (default 500)")->check(CLI::Range(240, 4000));
  run = [a] { run_plot(*a); };
}

}  // namespace ld::cli
