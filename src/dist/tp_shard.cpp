#include "dist/tp_shard.hpp"

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"

namespace ld::dist {

namespace {

void check_dim(const Shape& shape, const TpShard& shard, const std::string& what) {
  LD_CHECK(shard.groups >= 1, what, ": shard groups must be at least 1, got ", shard.groups);
  LD_CHECK(shard.dim < int64_t(shape.size()), what, ": shard dim ", shard.dim, " is out of range for shape ",
           shape_str(shape));
}

}  // namespace

Shape shard_shape(const Shape& full, const TpShard& shard, int tp_size, const std::string& what) {
  if (shard.replicated()) return full;
  check_dim(full, shard, what);
  const int64_t pieces = int64_t(shard.groups) * tp_size;
  LD_CHECK(full[size_t(shard.dim)] % pieces == 0, what, ": dim ", shard.dim, " of ", shape_str(full),
           " does not split into ", shard.groups, " group(s) x ", tp_size, " ranks");
  Shape part = full;
  part[size_t(shard.dim)] /= tp_size;
  return part;
}

Tensor shard_tensor(const Tensor& full, const TpShard& shard, const Communicator& comm, const std::string& what) {
  LD_CHECK(full.defined(), what, ": no tensor to shard");
  autograd::NoGradGuard no_grad;
  const Tensor src = full.detach();
  if (shard.replicated()) return src.clone();
  const Shape part_shape = shard_shape(src.shape(), shard, comm.size(), what);
  const int64_t dim = shard.dim;
  const int64_t piece = part_shape[size_t(dim)] / shard.groups;  // one rank's slice of one group
  const int64_t block = src.size(dim) / shard.groups;            // one group, all ranks
  Tensor part = empty(part_shape, src.dtype(), src.device());
  for (int64_t g = 0; g < shard.groups; ++g)
    part.narrow(dim, g * piece, piece).copy_(src.narrow(dim, g * block + comm.rank() * piece, piece));
  return part;
}

Tensor gather_tensor(const Tensor& part, const TpShard& shard, Communicator& comm, const std::string& what) {
  LD_CHECK(part.defined(), what, ": no tensor to gather");
  autograd::NoGradGuard no_grad;
  const Tensor src = part.detach().contiguous();
  if (shard.replicated()) return src.clone();
  check_dim(src.shape(), shard, what);
  LD_CHECK(src.dtype() == DType::f32, what, ": gathering needs an f32 tensor, got ", dtype_name(src.dtype()));
  const int64_t dim = shard.dim, ranks = comm.size();
  LD_CHECK(src.size(dim) % shard.groups == 0, what, ": dim ", dim, " of the part ", shape_str(src.shape()),
           " does not split into ", shard.groups, " groups");
  Shape stacked = src.shape();
  stacked.insert(stacked.begin(), ranks);
  Tensor all = empty(stacked, DType::f32, src.device());
  comm.all_gather(src.raw(), all.raw(), src.numel(), ElemType::f32);

  Shape full_shape = src.shape();
  full_shape[size_t(dim)] *= ranks;
  Tensor full = empty(full_shape, DType::f32, src.device());
  const int64_t piece = src.size(dim) / shard.groups;
  const int64_t block = full_shape[size_t(dim)] / shard.groups;
  for (int64_t r = 0; r < ranks; ++r) {
    const Tensor from_r = all.narrow(0, r, 1).squeeze(0);
    for (int64_t g = 0; g < shard.groups; ++g)
      full.narrow(dim, g * block + r * piece, piece).copy_(from_r.narrow(dim, g * piece, piece));
  }
  return full;
}

}  // namespace ld::dist
