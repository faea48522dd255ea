#pragma once
// `liandan plot RUN_DIR`: read RUN_DIR/metrics.jsonl and write loss.{svg,png} (train loss, and
// validation loss as markers on a line, against step) and lr.{svg,png} (learning rate against
// step), each file written atomically.
#include <filesystem>
#include <string>
#include <vector>

#include "plot/chart.hpp"
#include "plot/metrics_log.hpp"

namespace ld::plot {

enum class LogY { kAuto, kOn, kOff };

struct PlotOptions {
  double smooth = 0;        // EMA weight in [0, 1): 0 draws the raw train curve only; else the
                            // smoothed curve on top of a faint raw one (TensorBoard-style, debiased)
  LogY log_y = LogY::kAuto; // auto: log scale when the losses are positive and span over a decade
  int width = 800, height = 500;
};

struct PlotReport {
  std::vector<std::filesystem::path> written;
  std::vector<std::string> warnings;
};

// The debiased exponential moving average of `values` (weight `smooth` on the past).
std::vector<double> ema(const std::vector<double>& values, double smooth);

Chart loss_chart(const RunMetrics& m, const std::string& title, const PlotOptions& opt);
Chart lr_chart(const RunMetrics& m, const std::string& title, const PlotOptions& opt);

PlotReport plot_run(const std::filesystem::path& run_dir, const PlotOptions& opt);

}  // namespace ld::plot
