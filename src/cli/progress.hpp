#pragma once
// Progress on stderr for a person watching a terminal (never in logs or pipes): a live "\r" line with
// the count done (of the total, when known), the rate and, with a total, the time left. When other
// output streams to the same terminal a live line would overwrite it, so then (live = false) only the
// final figure is shown.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

namespace ld::cli {

class Progress {
 public:
  // unit: what is counted ("tokens", "items"); total 0 = unknown (no ETA).
  explicit Progress(std::string unit, size_t total = 0, bool live = true)
      : unit_(std::move(unit)),
        total_(total),
        enabled_(isatty(fileno(stderr)) != 0),
        live_(live),
        start_(std::chrono::steady_clock::now()) {}

  void tick(size_t done) {
    done_ = done;
    if (enabled_ && live_) std::fprintf(stderr, "\r%s", line().c_str());
  }
  void done() {
    if (enabled_) std::fprintf(stderr, live_ ? "\r%s\n" : "%s\n", line().c_str());
  }

 private:
  std::string line() const {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = s > 0 ? double(done_) / s : 0.0;
    char buf[160];
    if (total_ == 0) {
      std::snprintf(buf, sizeof buf, "[%zu %s, %.1f %s/s]", done_, unit_.c_str(), rate, unit_.c_str());
    } else {
      const double left = rate > 0 ? double(total_ - std::min(done_, total_)) / rate : 0.0;
      const long eta = long(left + 0.5);
      std::snprintf(buf, sizeof buf, "[%zu/%zu %s, %.1f %s/s, ETA %ld:%02ld]   ", done_, total_, unit_.c_str(), rate,
                    unit_.c_str(), eta / 60, eta % 60);
    }
    return buf;
  }

  std::string unit_;
  size_t total_;
  bool enabled_, live_;
  std::chrono::steady_clock::time_point start_;
  size_t done_ = 0;
};

}  // namespace ld::cli
