#include "backend/kernel_profile.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "backend/profiled_backend.hpp"
#include "core/error.hpp"

namespace ld {

namespace {
std::atomic<KernelProfile*> g_active{nullptr};
}  // namespace

KernelProfile* active_kernel_profile() { return g_active.load(std::memory_order_acquire); }

KernelProfile::KernelProfile() {
  KernelProfile* expected = nullptr;
  LD_CHECK(g_active.compare_exchange_strong(expected, this), "a KernelProfile is already running");
}

KernelProfile::~KernelProfile() { g_active.store(nullptr, std::memory_order_release); }

void KernelProfile::record(const std::string& kernel, const std::string& device, double seconds, double flops) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(rows_.begin(), rows_.end(),
                         [&](const KernelTime& r) { return r.kernel == kernel && r.device == device; });
  if (it == rows_.end()) it = rows_.insert(rows_.end(), KernelTime{kernel, device});
  it->calls += 1;
  it->seconds += seconds;
  it->flops += flops;
}

void KernelProfile::clear() {
  std::lock_guard lock(mutex_);
  rows_.clear();
}

std::vector<KernelTime> KernelProfile::totals() const {
  std::vector<KernelTime> rows;
  {
    std::lock_guard lock(mutex_);
    rows = rows_;
  }
  std::stable_sort(rows.begin(), rows.end(), [](const KernelTime& a, const KernelTime& b) { return a.seconds > b.seconds; });
  return rows;
}

std::string KernelProfile::table(int64_t steps) const {
  LD_CHECK(steps > 0, "KernelProfile::table: steps must be positive, got ", steps);
  const std::vector<KernelTime> rows = totals();
  double total = 0;
  for (const KernelTime& r : rows) total += r.seconds;
  std::string out = "| kernel | device | calls/step | ms/step | share | TFLOP/s |\n|---|---|---|---|---|---|\n";
  char line[256];
  for (const KernelTime& r : rows) {
    char tflops[32] = "";
    if (r.flops > 0 && r.seconds > 0) std::snprintf(tflops, sizeof tflops, "%.1f", r.flops / r.seconds / 1e12);
    std::snprintf(line, sizeof line, "| %s | %s | %.1f | %.3f | %.1f%% | %s |\n", r.kernel.c_str(), r.device.c_str(),
                  double(r.calls) / double(steps), 1e3 * r.seconds / double(steps),
                  total > 0 ? 100.0 * r.seconds / total : 0.0, tflops);
    out += line;
  }
  std::snprintf(line, sizeof line, "| all kernels | | | %.3f | 100%% | |\n", 1e3 * total / double(steps));
  return out + line;
}

}  // namespace ld
