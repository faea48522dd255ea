// attention_memory: peak resident memory of one causal attention forward + backward, to show that
// the flash kernels keep it linear in the sequence length (a materialised score matrix would add
// H * T * T floats: 768 MiB at T = 4096, H = 12).
//
// Usage: attention_memory [T=1024] [--threads N] [--max-mib M]
// Prints one line: T, the peak RSS in MiB (getrusage ru_maxrss), and the RSS before attention ran.
// With --max-mib it fails (exit 1) when the peak exceeds M: the CTest entry runs T = 4096 with a
// limit far below what one T x T matrix per head would take.
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "backend/cpu/cpu_backend.hpp"
#include "ops/ops.hpp"

namespace {

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t T = 1024;
    double max_mib = 0;
    for (int i = 1; i < argc; ++i) {
      if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
        ld::set_num_threads(std::atoi(argv[++i]));
      else if (std::strcmp(argv[i], "--max-mib") == 0 && i + 1 < argc)
        max_mib = std::atof(argv[++i]);
      else
        T = std::atoll(argv[i]);
    }
    if (T <= 0) {
      std::fprintf(stderr, "attention_memory: T must be positive\n");
      return 2;
    }
    const int64_t B = 1, H = 12, D = 64;
    ld::Tensor q = ld::randn({B, H, T, D}).set_requires_grad(true);
    ld::Tensor k = ld::randn({B, H, T, D}).set_requires_grad(true);
    ld::Tensor v = ld::randn({B, H, T, D}).set_requires_grad(true);
    const double before = peak_rss_mib();

    ld::Tensor out = ld::ops::attention(q, k, v);  // causal by default
    ld::ops::sum(out).backward();
    double check = q.grad().to_vector<float>()[0] + k.grad().to_vector<float>()[0] + v.grad().to_vector<float>()[0];

    const double peak = peak_rss_mib();
    std::printf("T=%lld peak_rss_mib=%.1f rss_before_attention_mib=%.1f (grad check %s)\n",
                static_cast<long long>(T), peak, before, std::isfinite(check) ? "finite" : "NOT FINITE");
    if (max_mib > 0 && peak > max_mib) {
      std::fprintf(stderr, "attention_memory: peak RSS %.1f MiB exceeds the limit of %.1f MiB\n", peak, max_mib);
      return 1;
    }
    return std::isfinite(check) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attention_memory: %s\n", e.what());
    return 1;
  }
}
