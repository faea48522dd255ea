#pragma once
// A deterministic single-OS-thread SIMT machine for running real .cu kernel source as host C++
// (tests/cuda_emulation). Every CUDA thread of a block is a fiber (ucontext) with its own stack, so
// the kernel's straight-line per-thread code runs unchanged; fibers switch only where CUDA threads
// interact: __syncthreads (block barrier), warp collectives (shuffles, mma.sync) and thread exit.
// Blocks run one after another, which is why one dynamic shared memory array serves them all.
//
// Scheduling is chosen to expose races, not to model timing: within a block one warp runs as far as
// it can (until every lane waits at a barrier or has exited) before the next warp starts, so a
// warp that reads what another warp has not written yet, or overwrites what another warp still has
// to read, meets the other warp's data in the wrong state. Warps go in ascending order in even
// blocks and descending in odd ones, so both "ahead" directions are tried.
//
// cp.async lands only when the issuing thread waits for its group (cp.async.wait_group), and its
// destination holds NaN from issue until then: an early read turns into NaN in the results.
// Errors the hardware would fault on (misaligned or out-of-range accesses, barrier or collective
// misuse, copies still in flight at exit) are counted and printed; tests assert the count is 0.
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace simt {

struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};

enum class State : uint8_t { ready, at_warp_op, at_barrier, done };
enum class WarpOp : uint8_t { shfl_xor, shfl_idx, mma_bf16_16816 };

struct Copy {  // one 16-byte cp.async
  unsigned char* dst;
  const unsigned char* src;
  bool valid;  // false: zero fill (src-size 0), src not read
};

struct Thread {
  ucontext_t ctx;
  unsigned char* stack = nullptr;
  State state = State::done;
  void* asan_fake_stack = nullptr;
  // The warp collective this lane waits in: its operands, then (written by the executor) its result.
  WarpOp op{};
  uint64_t shfl_bits = 0;
  unsigned shfl_mask = 0;
  int shfl_lane_mask = 0;  // shfl_xor: the lane mask; shfl_idx: the source lane (may differ per lane)
  uint32_t a[4]{}, b[2]{};
  float c[4]{};
  // cp.async: copies since the last commit, then committed groups, oldest first.
  std::vector<Copy> open_group;
  std::deque<std::vector<Copy>> groups;
};

// The emulated CUDA built-in variables (exposed read-only by the shim's cuda_runtime.h).
inline Dim3 thread_idx, block_idx, block_dim, grid_dim;

// The largest dynamic shared memory a block may opt into on sm_90 (227 KiB).
inline constexpr size_t kMaxDynamicSharedBytes = 232448;

struct Runtime {
  static constexpr size_t kStackBytes = size_t(256) << 10;  // ASan frames are large; pages are touched lazily
  std::vector<Thread> threads;
  ucontext_t scheduler;
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;  // learnt by the first fiber (ASan only)
  size_t scheduler_stack_size = 0;
  Thread* current = nullptr;
  const std::function<void()>* body = nullptr;
  unsigned char* shared = nullptr;  // the dynamic shared memory of the running block
  size_t shared_bytes = 0, shared_capacity = 0;
  // The array a kernel's `extern __shared__` names, for launches that do not pass one (LD_SIMT_LAUNCH).
  unsigned char* default_shared = nullptr;
  size_t default_shared_capacity = 0;
  bool abort_block = false;
  int errors = 0, printed = 0;  // printed: in this launch
};
inline Runtime rt;

inline int error_count() { return rt.errors; }

// Records a fault the hardware would raise (or undefined behaviour it would not), naming the block
// and thread; the first 20 of a launch are printed.
__attribute__((format(printf, 1, 2))) inline void error(const char* fmt, ...) {
  ++rt.errors;
  if (rt.printed++ >= 20) return;
  std::fprintf(stderr, "simt error (block %u, thread %u): ", block_idx.x, rt.current ? thread_idx.x : ~0u);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
  std::fputc('\n', stderr);
}

// Whether p points into the shared memory array at all / into the part the launch asked for.
inline bool is_shared(const void* p) {
  const auto* b = static_cast<const unsigned char*>(p);
  return b >= rt.shared && b < rt.shared + rt.shared_capacity;
}
inline bool in_launch_shared(const void* p, size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  return b >= rt.shared && b + n <= rt.shared + rt.shared_bytes;
}

// --- fiber switches (with AddressSanitizer's stack-switch annotations when it is on)

inline void asan_start(void** fake_stack, const void* bottom, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}
inline void asan_finish(void* fake_stack, const void** old_bottom, size_t* old_size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, old_bottom, old_size);
#else
  (void)fake_stack, (void)old_bottom, (void)old_size;
#endif
}

// Scheduler -> thread t, until it blocks or exits.
inline void resume(unsigned t) {
  Thread& th = rt.threads[t];
  rt.current = &th;
  thread_idx = {t, 0, 0};
  asan_start(&rt.scheduler_fake_stack, th.stack, Runtime::kStackBytes);
  swapcontext(&rt.scheduler, &th.ctx);
  asan_finish(rt.scheduler_fake_stack, nullptr, nullptr);
  rt.current = nullptr;
}

// Running thread -> scheduler, leaving the thread in state s.
inline void block_on(State s) {
  Thread& th = *rt.current;
  th.state = s;
  asan_start(&th.asan_fake_stack, rt.scheduler_stack_bottom, rt.scheduler_stack_size);
  swapcontext(&th.ctx, &rt.scheduler);
  asan_finish(th.asan_fake_stack, nullptr, nullptr);
}

inline void fiber_main() {
  asan_finish(nullptr, &rt.scheduler_stack_bottom, &rt.scheduler_stack_size);
  (*rt.body)();
  Thread& th = *rt.current;
  size_t in_flight = th.open_group.size();  // empty groups carry nothing, as on the hardware
  for (const std::vector<Copy>& group : th.groups) in_flight += group.size();
  if (in_flight > 0)
    error("%zu cp.async copies still in flight when the thread exits (no commit or cp.async.wait_group)", in_flight);
  th.state = State::done;
  asan_start(nullptr, rt.scheduler_stack_bottom, rt.scheduler_stack_size);  // never resumed
  setcontext(&rt.scheduler);
}

// --- warp collectives: each lane parks its operands and blocks; the scheduler runs the op when
// all 32 lanes are parked.

inline Thread& lane_thread(unsigned warp, unsigned lane) { return rt.threads[warp * 32 + lane]; }

inline uint16_t bf16_bits(uint32_t reg, int half) { return uint16_t(reg >> (16 * half)); }
inline double bf16_value(uint16_t bits) {
  const uint32_t u = uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, fragments as the PTX ISA defines them
// ("Matrix Fragments for mma.m16n8k16 with floating point type"), with g = laneid >> 2 and
// t = laneid % 4; element i of a fragment sits in register i / 2, the lower index in the low half:
//   A (16 x 16) a0..a7: row g for i < 2 or 4 <= i < 6, else g + 8; col 2t + (i & 1), + 8 for i >= 4
//   B (16 x 8)  b0..b3: row (k) 2t + (i & 1), + 8 for i >= 2; col (n) g
//   C, D (16 x 8) c0..c3: row g, + 8 for i >= 2; col 2t + (i & 1)
// Products of bf16 are exact; they are summed in double and rounded once (the hardware's f32
// accumulation order is unspecified, so no emulation matches it to the bit).
inline void run_mma(unsigned warp) {
  double A[16][16], B[16][8], C[16][8];
  for (unsigned lane = 0; lane < 32; ++lane) {
    const Thread& th = lane_thread(warp, lane);
    const int g = int(lane >> 2), t = int(lane % 4);
    for (int i = 0; i < 8; ++i) {
      const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8, col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
      A[row][col] = bf16_value(bf16_bits(th.a[i / 2], i % 2));
    }
    for (int i = 0; i < 4; ++i) {
      const int row = 2 * t + (i & 1) + (i >= 2 ? 8 : 0), col = g;
      B[row][col] = bf16_value(bf16_bits(th.b[i / 2], i % 2));
      C[g + (i >= 2 ? 8 : 0)][2 * t + (i & 1)] = th.c[i];
    }
  }
  for (unsigned lane = 0; lane < 32; ++lane) {
    Thread& th = lane_thread(warp, lane);
    const int g = int(lane >> 2), t = int(lane % 4);
    for (int i = 0; i < 4; ++i) {
      const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
      double acc = C[row][col];
      for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
      th.c[i] = float(acc);
    }
  }
}

// Runs the collective the whole warp is parked in, after checking that every lane is in the same
// one (a .sync/.aligned op that only part of the warp reaches is undefined on the hardware).
inline void run_warp_op(unsigned warp) {
  const Thread& first = lane_thread(warp, 0);
  for (unsigned lane = 1; lane < 32; ++lane) {
    const Thread& th = lane_thread(warp, lane);
    if (th.op != first.op || (th.op != WarpOp::mma_bf16_16816 && th.shfl_mask != first.shfl_mask) ||
        (th.op == WarpOp::shfl_xor && th.shfl_lane_mask != first.shfl_lane_mask)) {
      error("warp %u: lanes 0 and %u are in different warp collectives", warp, lane);
      rt.abort_block = true;
      return;
    }
  }
  if (first.op == WarpOp::mma_bf16_16816) {
    run_mma(warp);
  } else {
    if (first.shfl_mask != 0xffffffffu) error("warp %u: a shuffle with a partial mask is not emulated", warp);
    uint64_t in[32];
    for (unsigned lane = 0; lane < 32; ++lane) in[lane] = lane_thread(warp, lane).shfl_bits;
    for (unsigned lane = 0; lane < 32; ++lane) {
      Thread& th = lane_thread(warp, lane);
      if (first.op == WarpOp::shfl_idx) {  // __shfl_sync: srcLane modulo the width (32)
        th.shfl_bits = in[unsigned(th.shfl_lane_mask) % 32];
      } else {
        const unsigned src = lane ^ unsigned(first.shfl_lane_mask);
        th.shfl_bits = in[src < 32 ? src : lane];
      }
    }
  }
  for (unsigned lane = 0; lane < 32; ++lane) lane_thread(warp, lane).state = State::ready;
}

// Runs warp w until every lane waits at the block barrier or has exited.
inline void run_warp(unsigned warp) {
  for (;;) {
    for (unsigned lane = 0; lane < 32; ++lane)
      if (lane_thread(warp, lane).state == State::ready) resume(warp * 32 + lane);
    unsigned parked = 0;
    for (unsigned lane = 0; lane < 32; ++lane) parked += lane_thread(warp, lane).state == State::at_warp_op;
    if (parked == 0) return;
    if (parked < 32) {
      error("warp %u: %u lanes wait in a warp collective that the others (at a barrier or exited) never reach",
            warp, parked);
      rt.abort_block = true;
      return;
    }
    run_warp_op(warp);
    if (rt.abort_block) return;
  }
}

// getcontext returns twice as far as the compiler knows (it never does here: makecontext replaces
// the saved context), so it sits alone in a function with nothing live across it (-Wclobbered).
[[gnu::noinline]] inline void save_context(ucontext_t* ctx) { getcontext(ctx); }

// block: the linear index (x fastest, then y, then z), which also picks the warp order.
inline void run_block(unsigned block, unsigned threads) {
  block_idx = {block % grid_dim.x, block / grid_dim.x % grid_dim.y, block / grid_dim.x / grid_dim.y};
  for (unsigned t = 0; t < threads; ++t) {
    Thread& th = rt.threads[t];
    save_context(&th.ctx);
    th.ctx.uc_stack.ss_sp = th.stack;
    th.ctx.uc_stack.ss_size = Runtime::kStackBytes;
    th.ctx.uc_link = &rt.scheduler;
    makecontext(&th.ctx, fiber_main, 0);
    th.state = State::ready;
    th.open_group.clear();
    th.groups.clear();
  }
  const unsigned warps = threads / 32;
  for (;;) {
    for (unsigned i = 0; i < warps && !rt.abort_block; ++i) run_warp(block % 2 == 0 ? i : warps - 1 - i);
    if (rt.abort_block) return;
    unsigned waiting = 0, done = 0;
    for (unsigned t = 0; t < threads; ++t) {
      waiting += rt.threads[t].state == State::at_barrier;
      done += rt.threads[t].state == State::done;
    }
    if (done == threads) return;
    if (done > 0) {
      error("__syncthreads: %u threads wait for %u that have exited", waiting, done);
      rt.abort_block = true;
      return;
    }
    for (unsigned t = 0; t < threads; ++t) rt.threads[t].state = State::ready;
  }
}

// Out-of-bounds global accesses hit a guard page (see DeviceBuffer): say which thread did it.
inline void on_fault(int sig, siginfo_t* info, void*) {
  char msg[200];
  const int n = std::snprintf(msg, sizeof msg, "simt: fault at %p in block %u, thread %u (out-of-bounds access?)\n",
                              info->si_addr, block_idx.x + (block_idx.y + block_idx.z * grid_dim.y) * grid_dim.x,
                              thread_idx.x);
  if (n > 0 && write(STDERR_FILENO, msg, size_t(n)) < 0) _exit(128 + sig);
  signal(sig, SIG_DFL);  // returning re-runs the access, which now kills the process
}
inline void install_fault_handler() {
#if !defined(__SANITIZE_ADDRESS__)  // ASan reports these better itself
  static bool installed = false;
  if (installed) return;
  installed = true;
  static unsigned char alt_stack[1 << 16];
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa{};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
#endif
}

// kernel<<<grid, threads, shared_bytes>>>: body is the kernel call, run by every thread of every
// block in turn (x fastest, then y, then z). shared is the array the kernel's `extern __shared__` names; it
// holds NaN at each block's start (uninitialised), and the bytes past shared_bytes a canary that
// must survive.
inline void launch(Dim3 grid, unsigned threads, size_t shared_bytes, void* shared, size_t shared_capacity,
                   const std::function<void()>& body) {
  install_fault_handler();
  rt.printed = 0;
  const int64_t blocks = int64_t(grid.x) * grid.y * grid.z;
  // (more blocks in all than an int32 holds would be legal on the hardware, but not to emulate)
  if (grid.x == 0 || grid.x > unsigned(std::numeric_limits<int32_t>::max()) || grid.y == 0 || grid.y > 65535 ||
      grid.z == 0 || grid.z > 65535 || blocks > std::numeric_limits<int32_t>::max() || threads == 0 ||
      threads > 1024 || threads % 32 != 0 || shared_bytes > kMaxDynamicSharedBytes || shared_bytes > shared_capacity) {
    error("launch refused: %u x %u x %u blocks of %u threads, %zu bytes of shared memory (of %zu here)", grid.x,
          grid.y, grid.z, threads, shared_bytes, shared_capacity);
    return;
  }
  if (rt.threads.size() < threads) {
    const size_t old = rt.threads.size();
    rt.threads.resize(threads);
    for (size_t t = old; t < threads; ++t) {
      const size_t page = size_t(sysconf(_SC_PAGESIZE));
      void* p = mmap(nullptr, Runtime::kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) std::abort();
      mprotect(p, page, PROT_NONE);  // stacks grow down: an overflow faults instead of corrupting
      rt.threads[t].stack = static_cast<unsigned char*>(p) + page;
    }
  }
  rt.body = &body;
  rt.shared = static_cast<unsigned char*>(shared);
  rt.shared_bytes = shared_bytes;
  rt.shared_capacity = shared_capacity;
  block_dim = {threads, 1, 1};
  grid_dim = grid;
  constexpr uint32_t kCanary = 0x7fa5a5a5;  // a NaN too, so a read past the end shows in the results
  const size_t end = (shared_bytes + 3) / 4 * 4;
  for (int64_t b = 0; b < blocks; ++b) {
    std::memset(rt.shared, 0xff, end);  // 0xffffffff is a NaN
    for (size_t i = end; i + 4 <= shared_capacity; i += 4) std::memcpy(rt.shared + i, &kCanary, 4);
    rt.abort_block = false;
    run_block(unsigned(b), threads);
    if (rt.abort_block) return;  // the block is stuck: the rest would only repeat the report
    for (size_t i = end; i + 4 <= shared_capacity; i += 4)
      if (std::memcmp(rt.shared + i, &kCanary, 4) != 0) {
        error("shared memory written at byte %zu, past the %zu bytes the launch gave", i, shared_bytes);
        break;
      }
  }
  rt.body = nullptr;
}
inline void launch(int64_t blocks, unsigned threads, size_t shared_bytes, void* shared, size_t shared_capacity,
                   const std::function<void()>& body) {
  if (blocks <= 0 || blocks > std::numeric_limits<int32_t>::max()) {
    rt.printed = 0;
    return error("launch refused: %lld blocks", (long long)blocks);
  }
  launch(Dim3{unsigned(blocks), 1, 1}, threads, shared_bytes, shared, shared_capacity, body);
}

// The array launches without one of their own (LD_SIMT_LAUNCH) give their kernels' `extern
// __shared__`: the test defines it where the kernels' declaration names it and registers it here.
inline void set_shared(void* shared, size_t capacity) {
  rt.default_shared = static_cast<unsigned char*>(shared);
  rt.default_shared_capacity = capacity;
}

// What LD_SIMT_LAUNCH(kernel, grid, block, smem, stream)(args...) builds: the configuration, applied
// (`*`) to a closure that calls the kernel with the arguments copied, as a launch copies them.
struct LaunchConfig {
  Dim3 grid;
  unsigned threads;
  size_t shared_bytes;
  template <typename Body>
  void operator*(Body body) const {
    launch(grid, threads, shared_bytes, rt.default_shared, rt.default_shared_capacity, body);
  }
};

// --- device-side operations the shim headers expose

inline void syncthreads() {
  if (rt.current == nullptr) return error("__syncthreads outside a kernel");
  block_on(State::at_barrier);
}

// op shfl_xor: lane = this lane ^ lane_arg; shfl_idx: lane = lane_arg. Returns that lane's bits.
inline uint64_t shfl(WarpOp op, unsigned mask, uint64_t bits, int lane_arg) {
  Thread& th = *rt.current;
  th.op = op;
  th.shfl_mask = mask;
  th.shfl_bits = bits;
  th.shfl_lane_mask = lane_arg;
  block_on(State::at_warp_op);
  return th.shfl_bits;
}

inline void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Thread& th = *rt.current;
  th.op = WarpOp::mma_bf16_16816;
  std::memcpy(th.a, a, sizeof th.a);
  std::memcpy(th.b, b, sizeof th.b);
  std::memcpy(th.c, c, sizeof th.c);
  block_on(State::at_warp_op);
  std::memcpy(c, th.c, sizeof th.c);
}

// cp.async.cg.shared.global 16 bytes: both addresses 16-byte aligned (even with src-size 0, where
// src is not read), the destination in the block's shared memory, the source not.
inline void cp_async_16(void* dst, const void* src, bool valid) {
  if (reinterpret_cast<uintptr_t>(dst) % 16 != 0 || reinterpret_cast<uintptr_t>(src) % 16 != 0)
    return error("cp.async: misaligned 16-byte copy %p <- %p", dst, src);
  if (!in_launch_shared(dst, 16)) return error("cp.async: destination %p is not in the block's shared memory", dst);
  if (is_shared(src)) return error("cp.async: source %p is shared memory", src);
  std::memset(dst, 0xff, 16);  // in flight: NaN until the wait
  rt.current->open_group.push_back({static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), valid});
}

inline void cp_async_commit() {
  Thread& th = *rt.current;
  th.groups.push_back(std::move(th.open_group));
  th.open_group.clear();
}

// cp.async.wait_group n: all but the newest n committed groups complete (and become visible to
// this thread; other threads see them after a barrier). Uncommitted copies are not waited for.
inline void cp_async_wait(int pending) {
  Thread& th = *rt.current;
  while (th.groups.size() > size_t(pending)) {
    for (const Copy& c : th.groups.front()) {
      if (c.valid)
        std::memcpy(c.dst, c.src, 16);
      else
        std::memset(c.dst, 0, 16);
    }
    th.groups.pop_front();
  }
}

// A device allocation of n elements that ends at a PROT_NONE page, so a kernel reading or writing
// past it faults at once (reported by on_fault). The start is 16-byte aligned, as cudaMalloc's, so
// a size that is not a multiple of 16 bytes leaves a little NaN-filled slack before the guard page;
// the rest of the page before the start holds NaN too (ASan builds also catch reads there).
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    page_ = size_t(sysconf(_SC_PAGESIZE));
    const size_t bytes = (n * sizeof(T) + 15) / 16 * 16;
    span_ = (bytes + page_ - 1) / page_ * page_ + page_;
    void* p = mmap(nullptr, span_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<unsigned char*>(p);
    mprotect(base_ + span_ - page_, page_, PROT_NONE);
    std::memset(base_, 0xff, span_ - page_);
    data_ = reinterpret_cast<T*>(base_ + span_ - page_ - bytes);
  }
  ~DeviceBuffer() { munmap(base_, span_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* data() { return data_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data_[i]; }

 private:
  size_t n_, page_, span_;
  unsigned char* base_;
  T* data_;
};

}  // namespace simt
