#include "dist/mpi_communicator.hpp"

#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"

namespace ld::dist {

namespace {

MPI_Datatype mpi_type(ElemType type) {
  switch (type) {
    case ElemType::f32: return MPI_FLOAT;
    case ElemType::f64: return MPI_DOUBLE;
    case ElemType::i32: return MPI_INT32_T;
    case ElemType::i64: return MPI_INT64_T;
    case ElemType::u8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  return MPI_SUM;
}

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, size_t(length));
}

// One queued operation and its completion, shared by the queue and the Work handle.
struct Op {
  // Runs on the progress thread: either completes the operation (returns MPI_REQUEST_NULL) or starts
  // it and returns the request to poll. Returns an MPI error code through `code`.
  std::function<MPI_Request(int& code)> start;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::string error;
  const char* what = "";

  void finish(int code) {
    std::lock_guard lock(mutex);
    if (code != MPI_SUCCESS) error = std::string("MPI ") + what + " failed: " + mpi_error(code);
    done = true;
    cv.notify_all();
  }
};

class OpWork : public Work {
 public:
  explicit OpWork(std::shared_ptr<Op> op) : op_(std::move(op)) {}
  void wait() override {
    std::unique_lock lock(op_->mutex);
    op_->cv.wait(lock, [&] { return op_->done; });
    LD_CHECK(op_->error.empty(), op_->error);
  }

 private:
  std::shared_ptr<Op> op_;
};

}  // namespace

class MpiEngine {
 public:
  MpiEngine() : thread_([this] { run(); }) {}
  ~MpiEngine() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  WorkPtr submit(const char* what, std::function<MPI_Request(int&)> start) {
    auto op = std::make_shared<Op>();
    op->start = std::move(start);
    op->what = what;
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(op);
    }
    cv_.notify_all();
    return std::make_unique<OpWork>(op);
  }

 private:
  struct Pending {
    std::shared_ptr<Op> op;
    MPI_Request request;
  };

  void run() {
    std::vector<Pending> pending;
    auto idle = std::chrono::microseconds(5);
    for (;;) {
      std::deque<std::shared_ptr<Op>> fresh;
      {
        std::unique_lock lock(mutex_);
        if (pending.empty()) cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_ && queue_.empty() && pending.empty()) return;
        fresh.swap(queue_);
      }
      for (const auto& op : fresh) {
        int code = MPI_SUCCESS;
        MPI_Request request = op->start(code);
        if (request == MPI_REQUEST_NULL || code != MPI_SUCCESS) op->finish(code);
        else pending.push_back({op, request});
      }
      bool progressed = !fresh.empty();
      for (size_t i = 0; i < pending.size();) {
        int flag = 0;
        const int code = MPI_Test(&pending[i].request, &flag, MPI_STATUS_IGNORE);
        if (flag || code != MPI_SUCCESS) {
          pending[i].op->finish(code);
          pending[i] = pending.back();
          pending.pop_back();
          progressed = true;
        } else {
          ++i;
        }
      }
      // Transfers in flight progress only inside MPI calls: poll, backing off while nothing moves.
      if (!pending.empty()) {
        idle = progressed ? std::chrono::microseconds(5) : std::min(idle * 2, std::chrono::microseconds(200));
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, idle, [&] { return !queue_.empty(); });
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Op>> queue_;
  bool stop_ = false;
  std::thread thread_;  // last: runs on the members above
};

namespace {

std::shared_ptr<MpiEngine>& engine() {
  static std::shared_ptr<MpiEngine> the_engine;
  return the_engine;
}

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::shared_ptr<MpiEngine> engine, bool owned)
      : comm_(comm), engine_(std::move(engine)), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    if (!owned_) return;
    MPI_Comm comm = comm_;
    engine_->submit("Comm_free", [comm](int& code) mutable {
      code = MPI_Comm_free(&comm);
      return MPI_REQUEST_NULL;
    })->wait();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "mpi"; }

  WorkPtr all_reduce_async(void* data, int64_t count, ElemType type, ReduceOp op) override {
    if (count == 0) return std::make_unique<DoneWork>();
    return blocking("Allreduce", [=, this] {
      return MPI_Allreduce(MPI_IN_PLACE, data, checked(count), mpi_type(type), mpi_op(op), comm_);
    });
  }
  WorkPtr reduce_scatter_async(const void* in, void* out, int64_t count, ElemType type, ReduceOp op) override {
    if (count == 0) return std::make_unique<DoneWork>();
    return blocking("Reduce_scatter_block", [=, this] {
      return MPI_Reduce_scatter_block(in, out, checked(count), mpi_type(type), mpi_op(op), comm_);
    });
  }
  WorkPtr all_gather_async(const void* in, void* out, int64_t count, ElemType type) override {
    if (count == 0) return std::make_unique<DoneWork>();
    return blocking("Allgather", [=, this] {
      return MPI_Allgather(in, checked(count), mpi_type(type), out, checked(count), mpi_type(type), comm_);
    });
  }
  WorkPtr broadcast_async(void* data, int64_t count, ElemType type, int root) override {
    if (count == 0) return std::make_unique<DoneWork>();
    return blocking("Bcast", [=, this] { return MPI_Bcast(data, checked(count), mpi_type(type), root, comm_); });
  }
  WorkPtr send_async(const void* data, int64_t count, ElemType type, int dest, int tag) override {
    return engine_->submit("Isend", [=, this](int& code) {
      MPI_Request request = MPI_REQUEST_NULL;
      code = MPI_Isend(data, checked(count), mpi_type(type), dest, tag, comm_, &request);
      return request;
    });
  }
  WorkPtr recv_async(void* data, int64_t count, ElemType type, int source, int tag) override {
    return engine_->submit("Irecv", [=, this](int& code) {
      MPI_Request request = MPI_REQUEST_NULL;
      code = MPI_Irecv(data, checked(count), mpi_type(type), source, tag, comm_, &request);
      return request;
    });
  }
  WorkPtr barrier_async() override {
    return blocking("Barrier", [this] { return MPI_Barrier(comm_); });
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub = MPI_COMM_NULL;
    blocking("Comm_split", [&, this] { return MPI_Comm_split(comm_, color, key, &sub); })->wait();
    return std::make_unique<MpiCommunicator>(sub, engine_, true);
  }

 private:
  static int checked(int64_t count) {
    LD_CHECK(count >= 0 && count <= INT32_MAX, "MPI transfer of ", count, " elements: more than MPI's int count");
    return int(count);
  }
  // A call that completes on the progress thread.
  template <typename Call>
  WorkPtr blocking(const char* what, Call call) {
    return engine_->submit(what, [call](int& code) {
      code = call();
      return MPI_REQUEST_NULL;
    });
  }

  MPI_Comm comm_;
  std::shared_ptr<MpiEngine> engine_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> start_mpi(int* argc, char*** argv) {
  int provided = 0;
  const int code = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
  LD_CHECK(code == MPI_SUCCESS, "MPI_Init_thread failed: ", mpi_error(code));
  LD_CHECK(provided >= MPI_THREAD_SERIALIZED, "this MPI does not support MPI_THREAD_SERIALIZED (level ", provided,
           "), which liandan's progress thread needs");
  // Errors come back as codes (and then ld::Error, which the CLI turns into abort_job) rather than
  // MPI's default abort without a word of ours.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  engine() = std::make_shared<MpiEngine>();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, engine(), false);
}

void stop_mpi() {
  engine().reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void abort_mpi(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace ld::dist
