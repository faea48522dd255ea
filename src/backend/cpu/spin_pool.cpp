#include "backend/cpu/spin_pool.hpp"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ld::cpu {

namespace {

// How long a worker waits for the next job before it sleeps. A decode step's products are a few
// to tens of microseconds apart; between generations and in training the workers sleep.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

thread_local bool inside_job = false;

}  // namespace

struct SpinPool::State {
  // The job's chunk count (high 32 bits) and the next unclaimed chunk (low 32 bits), in one word:
  // a successful claim proves the job it belongs to is still running, so fn and context, read
  // after the claim, are that job's.
  alignas(64) std::atomic<uint64_t> ticket{0};
  alignas(64) std::atomic<int64_t> done{0};
  alignas(64) std::atomic<uint32_t> generation{0};
  std::atomic<int> sleepers{0};
  ChunkFn fn = nullptr;
  void* context = nullptr;
  std::mutex busy;
  std::vector<std::thread> threads;

  // Claims and runs chunks until none is left.
  void work() {
    uint64_t t = ticket.load(std::memory_order_acquire);
    while ((t & 0xffffffffu) < (t >> 32)) {
      if (!ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
      fn(context, int64_t(t & 0xffffffffu));
      done.fetch_add(1, std::memory_order_release);
      t = ticket.load(std::memory_order_acquire);
    }
  }
};

SpinPool& SpinPool::instance() {
  // Never destroyed: the workers sleep in a futex when the process exits, and no static
  // destructor can find the pool gone.
  static SpinPool* pool = new SpinPool(omp_get_max_threads() - 1);

  return *pool;
}

SpinPool::SpinPool(int workers) : state_(new State), workers_(workers > 0 ? workers : 0) {
  for (int i = 0; i < workers_; ++i) state_->threads.emplace_back([this] { worker_loop(); });
}

void SpinPool::worker_loop() {
  State& s = *state_;
  inside_job = true;  // a job's chunks never start a job of their own
  uint32_t seen = s.generation.load(std::memory_order_acquire);
  for (;;) {
    auto since = std::chrono::steady_clock::now();
    for (int spins = 1; s.generation.load(std::memory_order_acquire) == seen; ++spins) {
      cpu_relax();
      if (spins % 512 == 0 && std::chrono::steady_clock::now() - since > kSpin) {
        s.sleepers.fetch_add(1);
        s.generation.wait(seen);
        s.sleepers.fetch_sub(1);
        since = std::chrono::steady_clock::now();
      }
    }
    seen = s.generation.load(std::memory_order_acquire);
    s.work();
  }
}

void release_openmp_workers() {
  if (!omp_in_parallel()) omp_pause_resource_all(omp_pause_soft);
}

void SpinPool::run(int64_t chunks, ChunkFn fn, void* context) {
  State& s = *state_;
  if (chunks <= 1 || workers_ == 0 || inside_job || omp_in_parallel() || !s.busy.try_lock()) {
    for (int64_t c = 0; c < chunks; ++c) fn(context, c);
    return;
  }
  s.fn = fn;
  s.context = context;
  s.done.store(0, std::memory_order_relaxed);
  s.ticket.store(uint64_t(chunks) << 32, std::memory_order_release);
  s.generation.fetch_add(1);
  if (s.sleepers.load() > 0) s.generation.notify_all();
  s.work();
  // The rest are running on workers; one the OS has descheduled gets the core back by a yield.
  for (int spins = 1; s.done.load(std::memory_order_acquire) < chunks; ++spins) {
    if (spins % 1024 == 0) {
      std::this_thread::yield();
    } else {
      cpu_relax();
    }
  }
  s.busy.unlock();
}

}  // namespace ld::cpu
