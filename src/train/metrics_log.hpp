#pragma once
// The run's metrics.jsonl: one JSON object per line, appended and flushed as each is written, so a
// run killed at any moment leaves whole lines (at worst a partial last one, which plot/metrics_log
// skips). The trainer writes (field names are what `liandan plot` reads):
//   {"type": "train", "step", "loss", "lr", "tokens_per_s", "tokens", "grad_norm", ...}
//   {"type": "eval", "step", "val_loss", "val_ppl", ...}
//   {"type": "sample", "step", "prompt", "text"}
// A non-finite number is written as null (JSON has no NaN).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace ld::train {

inline constexpr const char* kMetricsFile = "metrics.jsonl";

class MetricsLog {
 public:
  // Opens `path` for appending (a resumed run continues the same file), creating it if needed.
  explicit MetricsLog(const std::filesystem::path& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& line);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ld::train
