#pragma once
// A thread pool for chains of short parallel loops: the matrix-vector products of a decode step,
// tens of microseconds each, one after another. An OpenMP region there costs ~2 us when libgomp's
// workers spin and tens of microseconds when they sleep (OMP_WAIT_POLICY=PASSIVE, the setting a
// shared machine needs), and a worker the OS has descheduled stalls the whole region. Here:
// - workers spin for a bounded time after each job (kSpinMicros), then sleep on a futex, so a
//   decode step's back-to-back jobs start in well under a microsecond whatever OMP_WAIT_POLICY says,
//   and an idle process burns no CPU;
// - chunks are claimed from a shared counter, so the caller runs every chunk no worker has taken
//   yet: a descheduled worker slows a job down to one thread's speed instead of stalling it.
#include <cstdint>
#include <type_traits>

namespace ld::cpu {

class SpinPool {
 public:
  using ChunkFn = void (*)(void* context, int64_t chunk);

  // The process's pool: omp_get_max_threads() - 1 workers, started on first use.
  static SpinPool& instance();

  // Threads a job runs on, the caller included.
  int threads() const { return workers_ + 1; }

  // Runs fn(context, c) for every c in [0, chunks) on the caller and the workers, and returns when
  // all are done. Runs everything on the caller when the pool has no workers, is busy with another
  // caller's job, or is called from inside a job or an OpenMP region.
  void run(int64_t chunks, ChunkFn fn, void* context);

  SpinPool(const SpinPool&) = delete;
  SpinPool& operator=(const SpinPool&) = delete;

 private:
  explicit SpinPool(int workers);
  ~SpinPool();
  struct State;
  void worker_loop();
  State* state_;
  int workers_;
};

// Lets OpenMP's idle workers go before a chain of SpinPool jobs. With libgomp's default wait
// policy they spin for milliseconds after each parallel region (a prefill's products), taking the
// cores from the pool's workers (tiny decode 4030 against 5350 tok/s with short spinning).
void release_openmp_workers();

// The chunk length spin_parallel_ranges uses: chunk i is [i * length, min(n, (i + 1) * length)), so
// a body that keeps per-chunk results can index them by lo / length.
inline int64_t spin_range_length(int64_t n, int64_t align) {
  const int64_t pieces = SpinPool::instance().threads();
  return ((n + pieces - 1) / pieces + align - 1) / align * align;
}

// body(lo, hi) over [0, n) in one chunk per thread, boundaries at multiples of align. More, smaller
// chunks balance better on paper but cost more than they save (tiny decode: 2 per thread 5290,
// 1 per thread 5520 tok/s; small 1225 against 1232).
template <typename Body>
void spin_parallel_ranges(int64_t n, int64_t align, Body&& body) {
  if (n <= 0) return;
  SpinPool& pool = SpinPool::instance();
  const int64_t chunk = spin_range_length(n, align);
  struct Context {
    std::remove_reference_t<Body>* body;
    int64_t n, chunk;
  } context{&body, n, chunk};
  auto run_chunk = [](void* c, int64_t i) {
    auto* ctx = static_cast<Context*>(c);
    const int64_t lo = i * ctx->chunk, hi = lo + ctx->chunk < ctx->n ? lo + ctx->chunk : ctx->n;
    (*ctx->body)(lo, hi);
  };
  pool.run((n + chunk - 1) / chunk, run_chunk, &context);
}

}  // namespace ld::cpu
