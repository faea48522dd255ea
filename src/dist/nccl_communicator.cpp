#include "dist/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.hpp"

// ncclCommSplit came with NCCL 2.18; older ones split through the bootstrap communicator and a new
// unique id. (Defined from outside only to compile the fallback on a newer NCCL.)
#ifndef LIANDAN_NCCL_HAS_SPLIT
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
#define LIANDAN_NCCL_HAS_SPLIT 1
#else
#define LIANDAN_NCCL_HAS_SPLIT 0
#endif
#endif

namespace ld::dist {

namespace {

ncclDataType_t nccl_type(ElemType type) {
  switch (type) {
    case ElemType::f32: return ncclFloat32;
    case ElemType::f64: return ncclFloat64;
    case ElemType::i32: return ncclInt32;
    case ElemType::i64: return ncclInt64;
    case ElemType::u8: return ncclUint8;
  }
  LD_FAIL("NCCL communicator: unknown element type ", int(type));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  LD_FAIL("NCCL communicator: unknown reduce op ", int(op));
}

void check_cuda(cudaError_t code, const char* call) {
  LD_CHECK(code == cudaSuccess, "NCCL communicator: CUDA ", call, " failed: ", cudaGetErrorString(code));
}

std::string nccl_error(ncclResult_t code, ncclComm_t comm) {
  std::string message = ncclGetErrorString(code);
  const char* detail = ncclGetLastError(comm);
  if (detail && *detail) message += std::string(" (") + detail + ")";
  return message;
}

// Why `device` cannot be used by this process, or "" when it can.
std::string device_problem(int device) {
  const CudaDevices devices = cuda_devices();
  if (devices.count == 0) return devices.problem;
  if (device < 0 || device >= devices.count)
    return "CUDA device " + std::to_string(device) + " does not exist (this process sees " +
           std::to_string(devices.count) + ", numbered from 0)";
  return "";
}

// When an issued operation is done: a CUDA event recorded on the communicator's stream after it.
// Point-to-point transfers share one per group, recorded only once the group is issued.
struct Completion {
  const char* what = "";
  cudaEvent_t event = nullptr;  // null until issued
  ~Completion() {
    if (event) cudaEventDestroy(event);
  }
};

// One NCCL communicator with its stream; shared by the Communicator and its Works, so a Work may be
// waited on (or dropped) after the communicator is gone.
class NcclState {
 public:
  NcclState(ncclComm_t comm, int device) : comm_(comm), device_(device) {
    try {
      use_device();
      check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
      check_cuda(cudaMalloc(&barrier_word_, sizeof(int)), "cudaMalloc");
      check_cuda(cudaMemset(barrier_word_, 0, sizeof(int)), "cudaMemset");
      check(ncclCommUserRank(comm_, &rank_), "ncclCommUserRank");
      check(ncclCommCount(comm_, &size_), "ncclCommCount");
    } catch (...) {
      release();
      throw;
    }
  }
  ~NcclState() { release(); }
  NcclState(const NcclState&) = delete;
  NcclState& operator=(const NcclState&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int device() const { return device_; }
  ncclComm_t comm() const { return comm_; }
  void* barrier_word() const { return barrier_word_; }

  // Enqueues `call` (which issues NCCL work on the stream it is given) after any held point-to-point
  // transfers, and returns its completion.
  std::shared_ptr<Completion> issue(const char* what, const std::function<ncclResult_t(cudaStream_t)>& call) {
    std::lock_guard lock(mutex_);
    use_device();
    flush_p2p_locked();
    check(call(stream_), what);
    auto done = std::make_shared<Completion>();
    done->what = what;
    record(*done);
    return done;
  }

  // Holds a send or receive back until the group is issued (see the header); returns the group's
  // completion.
  std::shared_ptr<Completion> hold_p2p(std::function<ncclResult_t(cudaStream_t)> transfer) {
    std::lock_guard lock(mutex_);
    if (!p2p_done_) {
      p2p_done_ = std::make_shared<Completion>();
      p2p_done_->what = "ncclSend/ncclRecv group";
    }
    p2p_held_.push_back(std::move(transfer));
    return p2p_done_;
  }

  // A host call on the communicator (split), serialised with the enqueues.
  void call(const char* what, const std::function<ncclResult_t()>& host_call) {
    std::lock_guard lock(mutex_);
    use_device();
    flush_p2p_locked();
    check(host_call(), what);
  }

  // Returns once `done` has completed; throws if its CUDA work or the communicator failed.
  void wait(Completion& done) {
    {
      std::lock_guard lock(mutex_);
      use_device();
      if (!done.event) flush_p2p_locked();
    }
    LD_CHECK(done.event, "NCCL ", done.what, " was never issued: an earlier error on this communicator dropped it");
    // Polled rather than cudaEventSynchronize'd: a peer that died leaves the event pending forever,
    // and only ncclCommGetAsyncError tells.
    auto pause = std::chrono::microseconds(0);
    for (;;) {
      const cudaError_t state = cudaEventQuery(done.event);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) {
        failed_ = true;
        check_cuda(state, done.what);
      }
      ncclResult_t async = ncclSuccess;
      check(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
      if (async != ncclSuccess && async != ncclInProgress) {
        failed_ = true;
        LD_FAIL("NCCL ", done.what, " failed: ", nccl_error(async, comm_));
      }
      if (pause.count() == 0) std::this_thread::yield();
      else std::this_thread::sleep_for(pause);
      pause = std::min(pause + std::chrono::microseconds(2), std::chrono::microseconds(100));
    }
  }

  void check(ncclResult_t code, const char* call) {
    if (code == ncclSuccess) return;
    failed_ = true;
    LD_FAIL("NCCL ", call, " failed: ", nccl_error(code, comm_));
  }

 private:
  void use_device() const { check_cuda(cudaSetDevice(device_), "cudaSetDevice"); }

  void record(Completion& done) {
    check_cuda(cudaEventCreateWithFlags(&done.event, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    check_cuda(cudaEventRecord(done.event, stream_), "cudaEventRecord");
  }

  void flush_p2p_locked() {
    if (p2p_held_.empty()) return;
    std::vector<std::function<ncclResult_t(cudaStream_t)>> held;
    held.swap(p2p_held_);
    std::shared_ptr<Completion> done = std::move(p2p_done_);
    check(ncclGroupStart(), "ncclGroupStart");
    ncclResult_t code = ncclSuccess;
    for (const auto& transfer : held)
      if (code == ncclSuccess) code = transfer(stream_);
    const ncclResult_t end = ncclGroupEnd();  // always closed, even after a failed call inside
    check(code, "ncclSend/ncclRecv");
    check(end, "ncclGroupEnd");
    record(*done);
  }

  // After an error the peers may be gone or stuck: abort rather than destroy, which could wait.
  void release() noexcept {
    cudaSetDevice(device_);
    if (comm_) {
      if (failed_) ncclCommAbort(comm_);
      else {
        if (stream_) cudaStreamSynchronize(stream_);
        ncclCommDestroy(comm_);
      }
      comm_ = nullptr;
    }
    if (barrier_word_) cudaFree(barrier_word_);
    if (stream_) cudaStreamDestroy(stream_);
    barrier_word_ = nullptr;
    stream_ = nullptr;
  }

  ncclComm_t comm_;
  int device_;
  int rank_ = 0, size_ = 1;
  cudaStream_t stream_ = nullptr;
  void* barrier_word_ = nullptr;  // the barrier's one int
  std::atomic<bool> failed_ = false;  // set by any thread that saw an error
  std::mutex mutex_;
  std::vector<std::function<ncclResult_t(cudaStream_t)>> p2p_held_;
  std::shared_ptr<Completion> p2p_done_;
};

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<NcclState> state, std::shared_ptr<Completion> done)
      : state_(std::move(state)), done_(std::move(done)) {}
  void wait() override { state_->wait(*done_); }

 private:
  std::shared_ptr<NcclState> state_;
  std::shared_ptr<Completion> done_;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::shared_ptr<NcclState> state, Communicator& bootstrap)
      : state_(std::move(state)), bootstrap_(&bootstrap) {}

  int rank() const override { return state_->rank(); }
  int size() const override { return state_->size(); }
  std::string backend_name() const override { return "nccl"; }

  WorkPtr all_reduce_async(void* data, int64_t count, ElemType type, ReduceOp op) override {
    if (count == 0) return std::make_unique<DoneWork>();
    check_buffer(data, count, type, "all_reduce");
    return issue("ncclAllReduce", [=, comm = state_->comm()](cudaStream_t s) {
      return ncclAllReduce(data, data, size_t(count), nccl_type(type), nccl_op(op), comm, s);
    });
  }
  WorkPtr reduce_scatter_async(const void* in, void* out, int64_t count, ElemType type, ReduceOp op) override {
    if (count == 0) return std::make_unique<DoneWork>();
    check_buffer(in, count * size(), type, "reduce_scatter input");
    check_buffer(out, count, type, "reduce_scatter output");
    return issue("ncclReduceScatter", [=, comm = state_->comm()](cudaStream_t s) {
      return ncclReduceScatter(in, out, size_t(count), nccl_type(type), nccl_op(op), comm, s);
    });
  }
  WorkPtr all_gather_async(const void* in, void* out, int64_t count, ElemType type) override {
    if (count == 0) return std::make_unique<DoneWork>();
    check_buffer(in, count, type, "all_gather input");
    check_buffer(out, count * size(), type, "all_gather output");
    return issue("ncclAllGather", [=, comm = state_->comm()](cudaStream_t s) {
      return ncclAllGather(in, out, size_t(count), nccl_type(type), comm, s);
    });
  }
  WorkPtr broadcast_async(void* data, int64_t count, ElemType type, int root) override {
    if (count == 0) return std::make_unique<DoneWork>();
    check_buffer(data, count, type, "broadcast");
    check_rank(root, "broadcast root");
    return issue("ncclBroadcast", [=, comm = state_->comm()](cudaStream_t s) {
      return ncclBroadcast(data, data, size_t(count), nccl_type(type), root, comm, s);
    });
  }
  WorkPtr send_async(const void* data, int64_t count, ElemType type, int dest, int) override {
    if (count == 0) return std::make_unique<DoneWork>();
    check_buffer(data, count, type, "send");
    check_rank(dest, "send destination");
    // The held transfer captures the comm handle, which the state (and so every Work) keeps alive.
    return hold([=, comm = state_->comm()](cudaStream_t s) {
      return ncclSend(data, size_t(count), nccl_type(type), dest, comm, s);
    });
  }
  WorkPtr recv_async(void* data, int64_t count, ElemType type, int source, int) override {
    if (count == 0) return std::make_unique<DoneWork>();
    check_buffer(data, count, type, "recv");
    check_rank(source, "recv source");
    return hold([=, comm = state_->comm()](cudaStream_t s) {
      return ncclRecv(data, size_t(count), nccl_type(type), source, comm, s);
    });
  }
  WorkPtr barrier_async() override {
    // max, not sum: the word stays 0 however many barriers run.
    return issue("barrier (ncclAllReduce)", [word = state_->barrier_word(), comm = state_->comm()](cudaStream_t s) {
      return ncclAllReduce(word, word, 1, ncclInt32, ncclMax, comm, s);
    });
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
#if LIANDAN_NCCL_HAS_SPLIT
    ncclComm_t sub = nullptr;
    state_->call("ncclCommSplit", [&] { return ncclCommSplit(state_->comm(), color, key, &sub, nullptr); });
    return std::make_unique<NcclCommunicator>(std::make_shared<NcclState>(sub, state_->device()), *bootstrap_);
#else
    std::unique_ptr<Communicator> sub_bootstrap = bootstrap_->split(color, key);
    auto sub = make_nccl_communicator(*sub_bootstrap, state_->device());
    static_cast<NcclCommunicator&>(*sub).owned_bootstrap_ = std::move(sub_bootstrap);
    return sub;
#endif
  }

 private:
  WorkPtr issue(const char* what, const std::function<ncclResult_t(cudaStream_t)>& call) {
    return std::make_unique<NcclWork>(state_, state_->issue(what, call));
  }
  WorkPtr hold(std::function<ncclResult_t(cudaStream_t)> transfer) {
    return std::make_unique<NcclWork>(state_, state_->hold_p2p(std::move(transfer)));
  }

  void check_rank(int rank, const char* what) const {
    LD_CHECK(rank >= 0 && rank < size(), "NCCL ", what, " ", rank, " is not a rank of this communicator (size ",
             size(), ")");
  }

  // A host pointer would crash inside NCCL's kernels; say so up front instead.
  void check_buffer(const void* data, int64_t count, ElemType type, const char* what) const {
    LD_CHECK(count > 0, "NCCL ", what, ": element count ", count, " is negative");
    cudaPointerAttributes attributes{};
    check_cuda(cudaPointerGetAttributes(&attributes, data), "cudaPointerGetAttributes");
    const bool on_device = attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
    LD_CHECK(on_device, "NCCL ", what, ": buffer ", data, " of ", count, " ", elem_size(type),
             "-byte elements is not CUDA device memory (the NCCL communicator's buffers live on the GPU)");
    LD_CHECK(attributes.type == cudaMemoryTypeManaged || attributes.device == state_->device(), "NCCL ", what,
             ": buffer ", data, " is on CUDA device ", attributes.device, ", but this rank's communicator uses device ",
             state_->device());
  }

  std::shared_ptr<NcclState> state_;
  Communicator* bootstrap_;                         // split's way to new ranks without ncclCommSplit
  std::unique_ptr<Communicator> owned_bootstrap_;   // a split's sub-communicator of the bootstrap
};

}  // namespace

CudaDevices cuda_devices() {
  int count = 0;
  const cudaError_t code = cudaGetDeviceCount(&count);
  if (code != cudaSuccess) return {0, std::string("cudaGetDeviceCount: ") + cudaGetErrorString(code)};
  if (count == 0) return {0, "cudaGetDeviceCount: no CUDA device"};
  return {count, ""};
}

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device) {
  // Agree first, so a rank without a device does not leave the others waiting for the unique id.
  const std::string problem = device_problem(device);
  int any_problem = problem.empty() ? 0 : 1;
  bootstrap.all_reduce(&any_problem, 1, ElemType::i32, ReduceOp::max);
  LD_CHECK(problem.empty(), "NCCL communicator on rank ", bootstrap.rank(), ": ", problem);
  LD_CHECK(any_problem == 0, "NCCL communicator: another rank has no usable CUDA device (its own error says why)");
  check_cuda(cudaSetDevice(device), "cudaSetDevice");

  ncclUniqueId id{};
  int made = ncclSuccess;
  if (bootstrap.rank() == 0) made = ncclGetUniqueId(&id);
  bootstrap.broadcast(&made, 1, ElemType::i32, 0);
  LD_CHECK(made == ncclSuccess, "NCCL ncclGetUniqueId failed on rank 0: ",
           nccl_error(ncclResult_t(made), nullptr));
  bootstrap.broadcast(&id, int64_t(sizeof id), ElemType::u8, 0);

  ncclComm_t comm = nullptr;
  const ncclResult_t code = ncclCommInitRank(&comm, bootstrap.size(), id, bootstrap.rank());
  LD_CHECK(code == ncclSuccess, "NCCL ncclCommInitRank (rank ", bootstrap.rank(), " of ", bootstrap.size(),
           ", device ", device, ") failed: ", nccl_error(code, nullptr));
  return std::make_unique<NcclCommunicator>(std::make_shared<NcclState>(comm, device), bootstrap);
}

}  // namespace ld::dist
