#include "plot/run_plots.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/atomic_file.hpp"
#include "core/error.hpp"

namespace ld::plot {

namespace {

constexpr Rgb kTrainColor{31, 119, 180}, kEvalColor{230, 110, 10}, kLrColor{44, 150, 44};

bool spans_over_a_decade(const Chart& c) {
  double lo = INFINITY, hi = 0;
  for (const Series& s : c.series)
    for (double v : s.y) {
      if (!std::isfinite(v)) continue;
      if (v <= 0) return false;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  return hi > 0 && hi / lo > 10;
}

std::string run_name(const std::filesystem::path& run_dir) {
  std::filesystem::path p = std::filesystem::weakly_canonical(std::filesystem::absolute(run_dir));
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

void write_pair(const Chart& chart, const std::filesystem::path& stem, PlotReport& report) {
  const auto svg = std::filesystem::path(stem).replace_extension(".svg");
  const auto png = std::filesystem::path(stem).replace_extension(".png");
  write_file_atomically(svg, render_svg(chart));
  write_file_atomically(png, render_png(chart));
  report.written.push_back(svg);
  report.written.push_back(png);
}

}  // namespace

std::vector<double> ema(const std::vector<double>& values, double smooth) {
  LD_CHECK(smooth >= 0 && smooth < 1, "--smooth must be in [0, 1), got ", smooth);
  std::vector<double> out;
  double avg = 0, weight = 0;
  for (double v : values) {
    avg = smooth * avg + (1 - smooth) * v;
    weight = smooth * weight + (1 - smooth);  // 1 - smooth^t: undoes the pull towards the zero start
    out.push_back(avg / weight);
  }
  return out;
}

Chart loss_chart(const RunMetrics& m, const std::string& title, const PlotOptions& opt) {
  Chart c{.title = title, .x_label = "step", .y_label = "loss", .series = {}, .log_y = false,
          .width = opt.width, .height = opt.height};
  Series train{.name = "train", .x = {}, .y = {}, .color = kTrainColor, .line = true, .markers = false, .opacity = 1.0};
  for (const TrainPoint& p : m.train) {
    train.x.push_back(p.step);
    train.y.push_back(p.loss);
  }
  if (!m.train.empty()) {
    if (opt.smooth > 0) {
      Series raw = train;
      raw.name = "";
      raw.opacity = 0.25;
      c.series.push_back(raw);
      train.y = ema(raw.y, opt.smooth);
      char name[48];
      std::snprintf(name, sizeof name, "train (EMA %g)", opt.smooth);
      train.name = name;
    }
    c.series.push_back(train);
  }
  if (!m.eval.empty()) {
    Series val{.name = "validation", .x = {}, .y = {}, .color = kEvalColor, .line = true, .markers = true, .opacity = 1.0};
    for (const EvalPoint& p : m.eval) {
      val.x.push_back(p.step);
      val.y.push_back(p.val_loss);
    }
    c.series.push_back(val);
  }
  if (opt.log_y == LogY::kOn)
    for (const Series& s : c.series)
      for (double v : s.y) LD_CHECK(!(v <= 0), "--log-y on: a loss of ", v, " cannot be shown on a log scale");
  c.log_y = opt.log_y == LogY::kOn || (opt.log_y == LogY::kAuto && spans_over_a_decade(c));
  return c;
}

Chart lr_chart(const RunMetrics& m, const std::string& title, const PlotOptions& opt) {
  Chart c{.title = title + ": learning rate", .x_label = "step", .y_label = "learning rate", .series = {},
          .log_y = false, .width = opt.width, .height = opt.height};
  Series lr{.name = "", .x = {}, .y = {}, .color = kLrColor, .line = true, .markers = false, .opacity = 1.0};
  for (const TrainPoint& p : m.train)
    if (p.lr) {
      lr.x.push_back(p.step);
      lr.y.push_back(*p.lr);
    }
  c.series.push_back(lr);
  return c;
}

PlotReport plot_run(const std::filesystem::path& run_dir, const PlotOptions& opt) {
  LD_CHECK(std::filesystem::is_directory(run_dir), run_dir.string(), ": not a folder (expected a run folder with metrics.jsonl)");
  const auto metrics_path = run_dir / "metrics.jsonl";
  LD_CHECK(std::filesystem::exists(metrics_path), metrics_path.string(), ": no such file (is this a run folder?)");
  RunMetrics m = read_metrics(metrics_path);
  LD_CHECK(!m.train.empty() || !m.eval.empty(), metrics_path.string(),
           ": no \"train\" or \"eval\" lines to plot");
  PlotReport report;
  report.warnings = m.warnings;
  const std::string name = run_name(run_dir);
  write_pair(loss_chart(m, name, opt), run_dir / "loss", report);
  if (std::any_of(m.train.begin(), m.train.end(), [](const TrainPoint& p) { return p.lr.has_value(); }))
    write_pair(lr_chart(m, name, opt), run_dir / "lr", report);
  else
    report.warnings.push_back(metrics_path.string() + ": no \"lr\" values; lr.svg/lr.png not written");
  return report;
}

}  // namespace ld::plot
