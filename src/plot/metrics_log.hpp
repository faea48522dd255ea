#pragma once
// Reading a training run's metrics.jsonl (one JSON object per line, written by the trainer):
//   {"type": "train", "step": int, "loss": float, "lr": float, ...}
//   {"type": "eval",  "step": int, "val_loss": float, ...}
// Unknown fields and unknown "type"s are ignored. A line that is not a JSON object, lacks "type", or
// lacks a numeric step/loss/val_loss is an error naming file:line; a null loss (how JSON writers
// spell NaN) drops that point with a warning. A malformed LAST line with no final newline is the
// trace of a run killed mid-write: it is skipped with a warning instead. Points are sorted by step;
// when a resumed run logged a step twice, the later line wins.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ld::plot {

struct TrainPoint {
  double step = 0;
  double loss = 0;
  std::optional<double> lr;
};

struct EvalPoint {
  double step = 0;
  double val_loss = 0;
};

struct RunMetrics {
  std::vector<TrainPoint> train;
  std::vector<EvalPoint> eval;
  std::vector<std::string> warnings;  // things skipped, for the CLI to print
};

// `source` names the text in messages (normally the file path).
RunMetrics parse_metrics(const std::string& text, const std::string& source);
RunMetrics read_metrics(const std::filesystem::path& path);

}  // namespace ld::plot
