#pragma once
// A GPT-2 split over a process grid's tensor-parallel group (TensorParallelGpt2), its pipeline group
// (PipelineGpt2Stage), or both (TensorParallelGpt2Stage: each pipeline stage tensor parallel),
// behind the one face the trainer's task needs: this rank's parameters, the
// loss of a micro-batch or a whole pipelined step, the global-norm bookkeeping, and conversions
// between this rank's part and the full Hugging Face tensors (checkpoints, evaluation on rank 0).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/pipeline_schedule.hpp"
#include "dist/pipeline_stage_interface.hpp"
#include "dist/process_grid.hpp"
#include "dist/tp_gpt2.hpp"
#include "nn/module.hpp"

namespace ld::models {
class CausalLM;
}

namespace ld::dist {

class Gpt2ModelParallel {
 public:
  // full: the whole model, the same on every rank. grid.tp or grid.pp (or both) is above 1.
  // Errors name the config key (a model that is not a dense GPT-2, sizes tp does not divide, more
  // stages than layers, an unknown schedule).
  Gpt2ModelParallel(const models::CausalLM& full, ProcessGrid& grid, const std::string& schedule);

  bool pipelined() const { return stage_ != nullptr; }
  NamedTensors named_parameters() const;
  bool counts_in_grad_norm(const std::string& name) const;

  // Tensor parallel: the micro-batch's mean next-token loss (the same on every rank).
  Tensor loss(const Tensor& inputs, const Tensor& targets) const;
  // Pipeline: one step's micro-batches, forwards and backwards; each micro-batch's loss.
  std::vector<double> pipeline_step(const std::vector<MicroBatch>& micro_batches);

  // See TrainTask::gather_like_parameters / shard_like_parameters.
  nn::StateDict gather_like(const NamedTensors& parts) const;
  NamedTensors shard_like(const nn::StateDict& full) const;
  // The whole model's state dict on the model-parallel group's first rank (tp 0, pp 0; empty on the
  // pipeline's other ranks). Collective.
  nn::StateDict gather_state_dict() const;

 private:
  int tp_rank_ = 0;
  Schedule schedule_ = Schedule::one_f_one_b;
  std::unique_ptr<TensorParallelGpt2> tp_;  // tensor parallel alone
  std::unique_ptr<PipelineStage> stage_;    // pipelined, each stage tensor parallel or not
};

}  // namespace ld::dist
