#pragma once
// The communicator of a job with one rank: reductions leave the data as it is, gathers and
// scatters copy, and point-to-point transfers (which need a second rank) are errors.
#include "dist/communicator.hpp"

namespace ld::dist {

class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend_name() const override { return "local"; }
  WorkPtr all_reduce_async(void* data, int64_t count, ElemType type, ReduceOp op) override;
  WorkPtr reduce_scatter_async(const void* in, void* out, int64_t count, ElemType type, ReduceOp op) override;
  WorkPtr all_gather_async(const void* in, void* out, int64_t count, ElemType type) override;
  WorkPtr broadcast_async(void* data, int64_t count, ElemType type, int root) override;
  WorkPtr send_async(const void* data, int64_t count, ElemType type, int dest, int tag) override;
  WorkPtr recv_async(void* data, int64_t count, ElemType type, int source, int tag) override;
  WorkPtr barrier_async() override;
  std::unique_ptr<Communicator> split(int color, int key) override;
};

}  // namespace ld::dist
