#pragma once
// Stopping a training run cleanly: a flag the loop reads after each step (then it writes a
// checkpoint and returns), set by request_stop() or, under a StopOnSignals, by SIGINT / SIGTERM.
// The flag is a lock-free atomic, so the signal handler only stores to it.
namespace ld::train {

// Asks a running pretrain() to checkpoint and return after the current step (async-signal-safe).
void request_stop();
bool stop_requested();
void clear_stop_request();

// While alive, SIGINT and SIGTERM request a stop (a second one of the same signal ends the process
// as usual); the previous handlers are restored on destruction.
class StopOnSignals {
 public:
  StopOnSignals();
  ~StopOnSignals();
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  void (*previous_int_)(int) = nullptr;
  void (*previous_term_)(int) = nullptr;
};

}  // namespace ld::train
