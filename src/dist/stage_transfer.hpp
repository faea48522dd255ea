#pragma once
// Named tensors between the stages of a pipeline group (rank 0 = the first stage), for checkpoints
// and the tied embedding: what PipelineGpt2Stage and TensorParallelGpt2Stage share. Host memory.
#include "dist/communicator.hpp"
#include "dist/pipeline_stage_interface.hpp"
#include "nn/module.hpp"

namespace ld::dist {

// Every rank's `local` brought to rank 0 under their names; a name several ranks hold is taken from
// the lowest. Empty on other ranks. Collective over pp.
nn::StateDict gather_to_first_stage(Communicator& pp, const NamedTensors& local);

// `wanted` (names, dtypes, shapes) filled from rank 0's `full` on every rank. Rank 0 serves every
// rank before failing, and each rank learns whether its tensors were found, so an error (naming the
// key) ends every rank that needed something missing rather than leaving one waiting. Collective.
NamedTensors scatter_from_first_stage(Communicator& pp, const nn::StateDict& full, NamedTensors wanted);

// Adds the gradient of `weight` on rank `peer` to this rank's (and the reverse on peer), so that the
// first and last stages' copies of a tied embedding get the same, bit-identical gradient.
void sum_tied_gradient(Communicator& pp, Tensor weight, int peer);

}  // namespace ld::dist
