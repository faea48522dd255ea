#pragma once
// The communication ops of Megatron-LM's tensor parallelism (Shoeybi et al. 2019) as autograd ops.
// Every rank of the tensor-parallel group `comm` calls each op in the same order with the same
// shapes, and the backward passes run their collectives in the same order too (the autograd engine
// is deterministic), so the ops pair up across ranks. The communicator must outlive the graph.
// Buffers are host memory (the local and MPI communicators).
//
//   copy_to_tp      Megatron's f: identity forward, all-reduce (sum) of the gradient backward. Put
//                   in front of a column-parallel layer, whose input is replicated.
//   reduce_from_tp  Megatron's g: all-reduce (sum) forward, identity backward. Put after a
//                   row-parallel layer, whose output is a partial sum on each rank.
//
// Vocabulary parallelism: the vocabulary [0, V) is cut into comm.size() equal slices, rank r holding
// ids [r V/tp, (r+1) V/tp) (the rows of its embedding part, the columns of its logits part).
#include <cstdint>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"

namespace ld::dist {

Tensor copy_to_tp(const Tensor& x, Communicator& comm);
Tensor reduce_from_tp(const Tensor& x, Communicator& comm);

// ids i32/i64 [...] over the whole vocabulary, table_part [V/tp, C]: every rank gets the full
// embedding [..., C] (each id is looked up by the rank holding its row, zeros elsewhere, summed).
// The gradient reaches the rows of table_part that this rank's slice owns.
Tensor vocab_parallel_embedding(const Tensor& ids, const Tensor& table_part, Communicator& comm);

// logits_part [..., V/tp] (this rank's vocabulary slice of the logits), targets i32/i64 [...] over
// the whole vocabulary (the same on every rank): the mean over non-ignored targets of
// log-sum-exp(logits) - logits[target], as ops::cross_entropy on the full logits (0 when every
// target is ignored). Forward all-reduces the row maxima, then the sums of exponentials together
// with the target logits; backward is softmax - onehot on the local slice, with no communication.
Tensor vocab_parallel_cross_entropy(const Tensor& logits_part, const Tensor& targets, Communicator& comm,
                                    int64_t ignore_index = -100);

}  // namespace ld::dist
