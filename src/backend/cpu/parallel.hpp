#pragma once
// Split [0, n) into one contiguous chunk per OpenMP thread and run body(lo, hi) on each. Bodies are
// plain loops the compiler can vectorise; GCC 12 does not vectorise lambdas inside a combined
// `parallel for simd`. Below min_parallel elements the body runs on the calling thread.
#include <algorithm>
#include <cstdint>

#include <omp.h>

namespace ld::cpu {

template <typename Body>
void parallel_chunks(int64_t n, Body&& body, int64_t min_parallel = int64_t(1) << 15) {
  if (n < min_parallel) {
    body(int64_t(0), n);
    return;
  }
#pragma omp parallel
  {
    int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t chunk = (n + threads - 1) / threads;
    int64_t lo = std::min(n, t * chunk), hi = std::min(n, (t + 1) * chunk);
    if (lo < hi) body(lo, hi);
  }
}

}  // namespace ld::cpu
