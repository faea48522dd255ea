#pragma once
// What the pipeline schedule (dist/pipeline_schedule.hpp) and Gpt2ModelParallel need of one stage of
// a pipelined GPT-2, with two implementations:
//   PipelineGpt2Stage         (pipeline_stage.hpp) the full model's own modules for a range of blocks
//   TensorParallelGpt2Stage   (tp_pipeline_stage.hpp) that range split over a tensor-parallel group
// The stage's communicator is its pipeline group: stage i is rank i. Activations between stages are
// whole (replicated over a tensor-parallel group), so each tensor-parallel rank talks to the same
// tensor-parallel rank of the neighbouring stages.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"
#include "io/hf_config.hpp"
#include "nn/module.hpp"

namespace ld::dist {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class PipelineStage {
 public:
  virtual ~PipelineStage() = default;

  virtual Communicator& communicator() const = 0;  // the pipeline group
  int stage() const { return communicator().rank(); }
  int stages() const { return communicator().size(); }
  bool is_first() const { return stage() == 0; }
  bool is_last() const { return stage() == stages() - 1; }
  virtual const io::HfModelConfig& hf_config() const = 0;
  // The dtype of the activations [B, T, n_embd] passed between stages.
  virtual DType activation_dtype() const = 0;

  // ids i32/i64 [B, T]; hidden [B, T, C] from the previous stage (ignored by the first). Returns
  // the residual stream after this stage's blocks, or on the last stage what loss() takes.
  virtual Tensor forward(const Tensor& ids, const Tensor& hidden) const = 0;
  // Last stage: the micro-batch's mean next-token cross-entropy (clm_loss) from forward's output.
  virtual Tensor loss(const Tensor& output, const Tensor& targets) const = 0;

  // This stage's parameters (this rank's parts) with their Hugging Face names.
  virtual NamedTensors named_parameters() const = 0;
  void zero_grad() {
    for (auto& [name, t] : named_parameters()) t.zero_grad();
  }
  // Sums the gradients of the first and last stages' copies of a tied wte (once per step).
  virtual void reduce_tied_gradients() = 0;
  // Whether this rank's `name` counts in the whole model's gradient norm (once per full tensor).
  virtual bool counts_in_grad_norm(const std::string& name) const = 0;

  // Tensors laid out like named_parameters() gathered into full tensors on the first stage's rank
  // (world rank 0 of the grid; empty elsewhere). Collective.
  virtual nn::StateDict gather_full(const NamedTensors& local) const = 0;
  // The full model's state_dict() (tied alias included) there; empty elsewhere. Collective.
  virtual nn::StateDict gather_full_state_dict() const = 0;
  // This rank's part of `full` (read on the first stage's rank only), in named_parameters() order.
  // A missing name or wrong shape is an error naming the key. Collective.
  virtual NamedTensors scatter_full(const nn::StateDict& full) const = 0;
};

}  // namespace ld::dist
