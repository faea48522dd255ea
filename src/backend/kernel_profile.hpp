#pragma once
// Where a run's time goes, kernel by kernel: while a KernelProfile is alive, backend_for() hands out
// a timing wrapper of each backend (profiled_backend.cpp). Every Backend call is then timed from a
// synchronize before it to one after it, so a device kernel's time is its own plus its launch, and
// queued work is never charged to the next call. That costs throughput (one sync per kernel); the
// shares are what it is for. GEMMs and attention also count their FLOPs, so their rows give
// achieved TFLOP/s.
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace ld {

struct KernelTime {
  std::string kernel;  // e.g. "gemm bf16 gelu_tanh", "copy f32->bf16", "layernorm_backward"
  std::string device;  // "cpu", "cuda:0"
  int64_t calls = 0;
  double seconds = 0;
  double flops = 0;  // matrix FLOPs done (GEMM, attention), 0 for the rest
};

class KernelProfile {
 public:
  KernelProfile();  // starts timing; one at a time (a second while one is alive is an error)
  ~KernelProfile();
  KernelProfile(const KernelProfile&) = delete;
  KernelProfile& operator=(const KernelProfile&) = delete;

  void record(const std::string& kernel, const std::string& device, double seconds, double flops);
  void clear();
  // Totals per (kernel, device), the most time first.
  std::vector<KernelTime> totals() const;
  // A markdown table with each kernel's calls and milliseconds per step, share of the kernels' time
  // and TFLOP/s where FLOPs were counted; steps divides the totals.
  std::string table(int64_t steps) const;

 private:
  mutable std::mutex mutex_;
  std::vector<KernelTime> rows_;
};

}  // namespace ld
