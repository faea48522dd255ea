#include "train/stop_request.hpp"

#include <pthread.h>

#include "core/error.hpp"

namespace ld::train {

namespace {
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");

// For threads that existed before StopOnSignals (they do not block the signals).
extern "C" void on_stop_signal(int) { g_stop.store(true); }

// Dies of `sig` as if nothing had caught it (the second Ctrl-C).
[[noreturn]] void die_of(int sig) {
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, nullptr);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  raise(sig);
  std::_Exit(128 + sig);
}
}  // namespace

void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(false); }

StopOnSignals::StopOnSignals() {
  sigemptyset(&stop_signals_);
  sigaddset(&stop_signals_, SIGINT);
  sigaddset(&stop_signals_, SIGTERM);
  struct sigaction fallback{};
  fallback.sa_handler = on_stop_signal;
  sigemptyset(&fallback.sa_mask);
  fallback.sa_flags = SA_RESTART;
  sigaction(SIGINT, &fallback, &previous_int_);
  sigaction(SIGTERM, &fallback, &previous_term_);
  LD_CHECK(pthread_sigmask(SIG_BLOCK, &stop_signals_, &previous_mask_) == 0, "cannot block SIGINT/SIGTERM");
  waiter_ = std::thread([this] { wait_for_signals(); });
}

void StopOnSignals::wait_for_signals() {
  for (;;) {
    int sig = 0;
    if (sigwait(&stop_signals_, &sig) != 0) continue;
    if (closing_.load()) return;
    if (g_stop.exchange(true)) die_of(sig);  // asked twice: stop now
  }
}

StopOnSignals::~StopOnSignals() {
  closing_.store(true);
  pthread_kill(waiter_.native_handle(), SIGTERM);  // blocked there, so it wakes sigwait
  waiter_.join();
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

}  // namespace ld::train
