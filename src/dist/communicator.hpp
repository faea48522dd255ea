#pragma once
// Communicator: the collectives and point-to-point transfers between the ranks of a job, behind one
// interface with three implementations (dist/world.hpp picks the process's own):
//   local  one rank; every operation is a copy or nothing (local_communicator.hpp)
//   mpi    Open MPI between processes and machines, started by mpirun or srun (mpi_communicator.hpp)
//   nccl   between GPUs, bootstrapped over MPI (built with LIANDAN_NCCL; buffers are device memory)
// Buffers are raw pointers with an element count and type, like the kernels'. Every operation has
// an asynchronous form returning a Work handle, so data parallel can reduce gradient buckets while
// the backward pass goes on; the blocking form is the asynchronous one waited on.
//
// Rules the caller keeps, as with MPI itself: every rank of a communicator issues its collectives
// in the same order with the same counts; buffers stay alive and untouched until wait() returns.
// A failed operation throws ld::Error from wait(); the CLI then aborts the whole job (world.hpp),
// so no rank is left waiting for one that is gone.
#include <cstdint>
#include <memory>
#include <string>

namespace ld::dist {

enum class ElemType { f32, f64, i32, i64, u8 };
size_t elem_size(ElemType type);

enum class ReduceOp { sum, max, min };

// An operation in flight. wait() returns once its output may be read and its input reused.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};
using WorkPtr = std::unique_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend_name() const = 0;  // "local" | "mpi" | "nccl"

  // In place: data[i] = op over the ranks of data[i].
  virtual WorkPtr all_reduce_async(void* data, int64_t count, ElemType type, ReduceOp op) = 0;
  // in holds size() blocks of `count`; out receives block rank() reduced over the ranks.
  virtual WorkPtr reduce_scatter_async(const void* in, void* out, int64_t count, ElemType type, ReduceOp op) = 0;
  // in holds `count`; out receives size() blocks of `count`, block r from rank r.
  virtual WorkPtr all_gather_async(const void* in, void* out, int64_t count, ElemType type) = 0;
  virtual WorkPtr broadcast_async(void* data, int64_t count, ElemType type, int root) = 0;
  virtual WorkPtr send_async(const void* data, int64_t count, ElemType type, int dest, int tag) = 0;
  virtual WorkPtr recv_async(void* data, int64_t count, ElemType type, int source, int tag) = 0;
  virtual WorkPtr barrier_async() = 0;

  // The ranks with the same `color` form a new communicator, ranked by (key, rank). Collective over
  // this communicator's ranks.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  // Blocking forms.
  void all_reduce(void* data, int64_t count, ElemType type, ReduceOp op = ReduceOp::sum) {
    all_reduce_async(data, count, type, op)->wait();
  }
  void reduce_scatter(const void* in, void* out, int64_t count, ElemType type, ReduceOp op = ReduceOp::sum) {
    reduce_scatter_async(in, out, count, type, op)->wait();
  }
  void all_gather(const void* in, void* out, int64_t count, ElemType type) {
    all_gather_async(in, out, count, type)->wait();
  }
  void broadcast(void* data, int64_t count, ElemType type, int root) {
    broadcast_async(data, count, type, root)->wait();
  }
  void send(const void* data, int64_t count, ElemType type, int dest, int tag = 0) {
    send_async(data, count, type, dest, tag)->wait();
  }
  void recv(void* data, int64_t count, ElemType type, int source, int tag = 0) {
    recv_async(data, count, type, source, tag)->wait();
  }
  void barrier() { barrier_async()->wait(); }

  // Typed conveniences for host scalars.
  double all_reduce_sum(double value) {
    all_reduce(&value, 1, ElemType::f64, ReduceOp::sum);
    return value;
  }
  double all_reduce_max(double value) {
    all_reduce(&value, 1, ElemType::f64, ReduceOp::max);
    return value;
  }
};

// A Work that is already done (local operations, empty transfers).
class DoneWork : public Work {
 public:
  void wait() override {}
};

}  // namespace ld::dist
