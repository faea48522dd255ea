// cpu::SpinPool: every chunk of every job runs exactly once, back-to-back jobs do not mix, jobs started
// from inside a job or from two threads at once complete, and spin_parallel_ranges tiles [0, n).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/cpu/spin_pool.hpp"

using ld::cpu::SpinPool;

namespace {

struct Counts {
  std::vector<std::atomic<int>> per_chunk;
  std::atomic<int> off_caller{0};
  std::thread::id caller;
  int busy_micros = 0;
  explicit Counts(int64_t chunks) : per_chunk(static_cast<size_t>(chunks)), caller(std::this_thread::get_id()) {}
};

void count_chunk(void* context, int64_t chunk) {
  auto* counts = static_cast<Counts*>(context);
  if (counts->busy_micros > 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(counts->busy_micros);
    while (std::chrono::steady_clock::now() < until) {
    }
  }
  counts->per_chunk[static_cast<size_t>(chunk)].fetch_add(1);
  if (std::this_thread::get_id() != counts->caller) counts->off_caller.fetch_add(1);
}

void expect_each_once(const Counts& counts, int job) {
  for (size_t c = 0; c < counts.per_chunk.size(); ++c)
    ASSERT_EQ(counts.per_chunk[c].load(), 1) << "job " << job << " chunk " << c;
}

}  // namespace

TEST(SpinPool, BackToBackJobsRunEveryChunkOnce) {
  SpinPool& pool = SpinPool::instance();
  for (int job = 0; job < 20000; ++job) {
    const int64_t chunks = 1 + job % 7;
    Counts counts(chunks);
    counts.busy_micros = job % 3;  // trivial chunks, and ones a worker can join in time
    pool.run(chunks, count_chunk, &counts);
    expect_each_once(counts, job);
  }
}

TEST(SpinPool, WorkersTakeChunksOfSlowJobs) {
  SpinPool& pool = SpinPool::instance();
  if (pool.threads() < 2) GTEST_SKIP() << "one thread: the pool has no workers";
  // On an oversubscribed machine a woken worker may wait milliseconds for a core while the caller
  // runs both chunks itself; so keep going until a worker has taken one, for up to a minute.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int jobs = 0, off_caller = 0;
  while (off_caller == 0 && std::chrono::steady_clock::now() < deadline) {
    Counts counts(2);
    counts.busy_micros = 200;
    pool.run(2, count_chunk, &counts);
    expect_each_once(counts, jobs++);
    off_caller += counts.off_caller.load();
  }
  EXPECT_GT(off_caller, 0) << "no chunk of " << jobs << " two-chunk jobs ran on a worker in a minute";
}

TEST(SpinPool, JobInsideAJobRunsInline) {
  std::deque<Counts> inner_counts;
  for (int i = 0; i < 4; ++i) inner_counts.emplace_back(5);
  auto outer_chunk = [](void* context, int64_t chunk) {
    auto* inner = static_cast<std::deque<Counts>*>(context);
    SpinPool::instance().run(5, count_chunk, &(*inner)[static_cast<size_t>(chunk)]);
  };
  SpinPool::instance().run(4, outer_chunk, &inner_counts);
  for (int i = 0; i < 4; ++i) expect_each_once(inner_counts[static_cast<size_t>(i)], i);
}

TEST(SpinPool, TwoCallingThreadsAtOnce) {
  auto caller = [] {
    for (int job = 0; job < 3000; ++job) {
      Counts counts(3);
      SpinPool::instance().run(3, count_chunk, &counts);
      expect_each_once(counts, job);
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
}

TEST(SpinPool, RangesTileTheInterval) {
  for (int64_t n : {0, 1, 15, 16, 17, 384, 1000, 1152}) {
    for (int64_t align : {1, 8, 16}) {
      std::mutex lock;
      std::vector<int> covered(static_cast<size_t>(n), 0);
      std::vector<std::pair<int64_t, int64_t>> ranges;
      ld::cpu::spin_parallel_ranges(n, align, [&](int64_t lo, int64_t hi) {
        std::lock_guard<std::mutex> guard(lock);
        ranges.emplace_back(lo, hi);
        for (int64_t i = lo; i < hi; ++i) covered[static_cast<size_t>(i)] += 1;
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(covered[static_cast<size_t>(i)], 1) << "n " << n << " index " << i;
      for (auto [lo, hi] : ranges) {
        EXPECT_LT(lo, hi);
        EXPECT_EQ(lo % align, 0) << "n " << n << " align " << align;
      }
    }
  }
}
