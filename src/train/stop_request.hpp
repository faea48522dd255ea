#pragma once
// Stopping a training run cleanly: a flag the loop reads after each step (then it writes a
// checkpoint and returns), set by request_stop() or, under a StopOnSignals, by SIGINT / SIGTERM.
#include <atomic>
#include <csignal>
#include <thread>

namespace ld::train {

// Asks a running training loop to checkpoint and return after the current step (async-signal-safe).
void request_stop();
bool stop_requested();
void clear_stop_request();

// While alive, SIGINT and SIGTERM request a stop; a second one ends the process as the signal
// normally does. The signals are taken by a thread of its own (sigwait) and blocked in the thread
// that creates it and in every thread started after it, so no handler ever interrupts the training
// threads: an asynchronous handler landing inside JIT-compiled GEMM kernels corrupted the heap now
// and then (about 1 run in 10 interrupted early). Create it before the threads that train. Threads
// that already existed fall back to a handler that only sets the flag. Everything is restored on
// destruction.
class StopOnSignals {
 public:
  StopOnSignals();
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  void wait_for_signals();

  sigset_t stop_signals_{}, previous_mask_{};
  struct sigaction previous_int_{}, previous_term_{};
  std::atomic<bool> closing_{false};
  std::thread waiter_;
};

}  // namespace ld::train
