#pragma once
// One training step of a pipeline: its micro-batches through the stages of a PipelineStage
// (PipelineGpt2Stage, or TensorParallelGpt2Stage inside which each stage is tensor parallel), in one
// of two orders.
//   gpipe        (Huang et al.) every forward, then every backward: all micro-batches' activations
//                are alive at once.
//   one_f_one_b  (PipeDream-Flush, Megatron's default) stage s of S first runs min(S - s - 1, M)
//                warm-up forwards, then alternates one forward and one backward, then finishes the
//                remaining backwards: at most S - s micro-batches are in flight on stage s.
// Both give the same gradients. Activations [B, T, C] go forward and their gradients back with the
// communicator's send/recv; sends are posted without waiting, so a stage that sends one thing and
// receives the next has both posted together. A micro-batch's activations are freed as soon as its
// backward is done. Each micro-batch's loss is divided by the number of micro-batches before its
// backward, so the accumulated gradients are the mean over the step, as gradient accumulation's.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "dist/pipeline_stage_interface.hpp"

namespace ld::dist {

enum class Schedule { gpipe, one_f_one_b };
std::string schedule_name(Schedule schedule);  // "gpipe" | "1f1b"

// What a stage does next: the forward or the backward of one micro-batch.
struct PipelineAction {
  bool forward = true;
  int64_t micro_batch = 0;
  bool operator==(const PipelineAction&) const = default;
};
// The order in which `stage` of `stages` runs `micro_batches` micro-batches.
std::vector<PipelineAction> schedule_actions(Schedule schedule, int stages, int stage, int64_t micro_batches);

struct MicroBatch {
  Tensor inputs;   // i32/i64 [B, T], on every stage (each checks them; the first embeds them)
  Tensor targets;  // i64 [B, T], read by the last stage
};

struct PipelineStepResult {
  std::vector<double> losses;  // each micro-batch's mean cross-entropy (undivided), on every stage
  int64_t max_in_flight = 0;   // on this stage: most micro-batches forwarded and not yet backwarded
  // The process's host memory in use (core/allocator.hpp), most seen after any forward or backward
  // of the step: what keeping fewer micro-batches in flight saves shows here (CPU tensors).
  size_t peak_bytes_in_use = 0;
};

// Runs the forwards and backwards of one optimizer step, adding the mean gradient into the stage's
// parameters' .grad, then sums the tied embedding copies' gradients (reduce_tied_gradients), so
// call it once per optimizer step with the gradients zeroed. Collective over the stage's
// communicator; every stage passes the same micro-batches (shapes at least).
PipelineStepResult run_pipeline_step(PipelineStage& stage, const std::vector<MicroBatch>& micro_batches,
                                     Schedule schedule);

}  // namespace ld::dist
