#include "dist/local_communicator.hpp"

#include <cstring>

#include "core/error.hpp"

namespace ld::dist {

size_t elem_size(ElemType type) {
  switch (type) {
    case ElemType::f32: return 4;
    case ElemType::f64: return 8;
    case ElemType::i32: return 4;
    case ElemType::i64: return 8;
    case ElemType::u8: return 1;
  }
  LD_ASSERT(false, "unknown ElemType");
  return 0;
}

namespace {

WorkPtr copy(const void* in, void* out, int64_t count, ElemType type) {
  if (in != out && count > 0) std::memcpy(out, in, size_t(count) * elem_size(type));
  return std::make_unique<DoneWork>();
}

}  // namespace

WorkPtr LocalCommunicator::all_reduce_async(void*, int64_t, ElemType, ReduceOp) {
  return std::make_unique<DoneWork>();
}

WorkPtr LocalCommunicator::reduce_scatter_async(const void* in, void* out, int64_t count, ElemType type, ReduceOp) {
  return copy(in, out, count, type);
}

WorkPtr LocalCommunicator::all_gather_async(const void* in, void* out, int64_t count, ElemType type) {
  return copy(in, out, count, type);
}

WorkPtr LocalCommunicator::broadcast_async(void*, int64_t, ElemType, int root) {
  LD_CHECK(root == 0, "broadcast from rank ", root, " in a job of one rank");
  return std::make_unique<DoneWork>();
}

WorkPtr LocalCommunicator::send_async(const void*, int64_t, ElemType, int dest, int) {
  LD_FAIL("send to rank ", dest, " in a job of one rank");
}

WorkPtr LocalCommunicator::recv_async(void*, int64_t, ElemType, int source, int) {
  LD_FAIL("receive from rank ", source, " in a job of one rank");
}

WorkPtr LocalCommunicator::barrier_async() { return std::make_unique<DoneWork>(); }

std::unique_ptr<Communicator> LocalCommunicator::split(int, int) { return std::make_unique<LocalCommunicator>(); }

}  // namespace ld::dist
