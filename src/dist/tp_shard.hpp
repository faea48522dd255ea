#pragma once
// How one tensor of a tensor-parallel model is laid out across the ranks of a tensor-parallel group,
// and the two conversions between the full tensor and this rank's part. Used for the parameters and
// for anything laid out like them (gradients, AdamW's exp_avg and exp_avg_sq), so a checkpoint
// always holds full tensors and loads on any number of ranks.
//
// A sharded dim of size S is `groups` equal blocks (GPT-2's c_attn output is q | k | v: 3 groups);
// each block is cut into `size` equal pieces and rank r holds piece r of every block, concatenated
// in block order. groups = 1 is the plain contiguous split.
#include <cstdint>
#include <string>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"

namespace ld::dist {

struct TpShard {
  int dim = -1;    // the split dimension; -1: replicated (every rank holds the whole tensor)
  int groups = 1;  // equal blocks of that dimension, each split across the ranks

  bool replicated() const { return dim < 0; }
};

// The shape of rank's part of a tensor of shape `full` (any rank: the parts are equal). Throws,
// naming `what`, when the sharded dim is not divisible by groups * tp_size.
Shape shard_shape(const Shape& full, const TpShard& shard, int tp_size, const std::string& what);

// This rank's part of `full`, a new contiguous f32 tensor with no autograd history.
Tensor shard_tensor(const Tensor& full, const TpShard& shard, const Communicator& comm, const std::string& what);

// The full tensor from every rank's part (an all-gather: collective over comm; every rank gets it).
// A replicated tensor is this rank's copy, cloned (no communication).
Tensor gather_tensor(const Tensor& part, const TpShard& shard, Communicator& comm, const std::string& what);

}  // namespace ld::dist
