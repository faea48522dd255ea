#pragma once
// What the training loop (train/trainer.hpp) asks of the thing it trains, so that pretraining and
// fine-tuning share one loop (steps, accumulation, clipping, schedule, loss scaling and autocast,
// progress, metrics, evaluation scheduling, checkpoints, exact resume, stops) and differ only here:
// the model and its trainable parameters, the batch source and its resumable cursor, the loss of a
// micro-batch, what an evaluation measures, and what a checkpoint and the final output hold.
//
// A task is built for a fresh run or from the checkpoint it resumes (its weights or adapter are
// loaded then); the loop restores the optimizer, the loss scale, the default generator and the
// TrainerState, then calls start_data with that state.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "nn/module.hpp"
#include "ops/autocast.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics_log.hpp"
#include "train/objectives.hpp"
#include "train/trainer.hpp"

namespace ld::dist {
struct ProcessGrid;
}

namespace ld::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class TrainTask {
 public:
  virtual ~TrainTask() = default;

  // The start line's subject, e.g. "pretraining gpt2 (124,439,808 parameters) on data/x".
  virtual std::string describe() const = 0;
  // The module trained (in training mode; evaluate may switch it to eval mode and back).
  virtual nn::Module& model() = 0;
  // What the optimizer updates, by name (frozen tensors among them are left out by the optimizer).
  virtual std::vector<std::pair<std::string, Tensor>> trainable_parameters() = 0;
  // For MFU; 0 = unknown.
  virtual int64_t flops_per_token() const { return 0; }
  // Whether the metrics show lm_loss and aux_loss apart (MoE models).
  virtual bool splits_aux_loss() const { return false; }

  // Data parallel: this process is rank `rank` of `ranks` and must read only its slice of each
  // global batch (called before start_data). Tasks that cannot split their data refuse.
  virtual void set_data_rank(int rank, int ranks) {
    LD_CHECK(ranks == 1, describe(), ": this task cannot split its data over ", ranks,
             " data-parallel ranks yet; run it as one process");
  }

  // --- model parallel (dist.tp, dist.pp; see dist/process_grid.hpp). A task that splits its model
  // over the grid's tensor-parallel or pipeline group overrides all of these.
  // Called once before set_data_rank when dist.tp or dist.pp is above 1: from then on
  // trainable_parameters() are this rank's part. The grid outlives the task's training.
  virtual void set_model_parallel(dist::ProcessGrid& grid) {
    LD_FAIL(describe(), ": tensor and pipeline parallel (dist.tp, dist.pp) are not supported by this task");
  }
  // Whether this rank's copy of parameter `name` counts in the global gradient norm (a tensor-
  // parallel replica or the pipeline's copy of a tied embedding counts on one rank only).
  virtual bool counts_in_grad_norm(const std::string& name) const { return true; }
  // Pipeline parallel: runs the forwards and backwards of a step's `count` micro-batches itself
  // (each loss divided by count before its backward) and returns their losses; nullopt: the
  // trainer's own loop calls next_loss.
  virtual std::optional<std::vector<LossParts>> run_step_micro_batches(TrainerState& state, int64_t count) {
    return std::nullopt;
  }
  // Tensors laid out like trainable_parameters() (optimizer moments) gathered into full tensors on
  // rank 0 (empty elsewhere), and full tensors (given on every rank) cut into this rank's parts, in
  // trainable_parameters() order. Collective over the model-parallel group.
  virtual nn::StateDict gather_like_parameters(const NamedTensors& parts) {
    return nn::StateDict(parts.begin(), parts.end());
  }
  virtual NamedTensors shard_like_parameters(const nn::StateDict& full) { return {full.begin(), full.end()}; }
  // The whole model's trainable parameters (what a checkpoint's optimizer state is laid out as).
  virtual NamedTensors full_parameters() { return trainable_parameters(); }
  // Brings the whole model up to date on rank 0 from the ranks' parts, before an evaluation or a
  // save there. Collective.
  virtual void gather_model() {}

  // Opens the training data at state.cursor (state.seed shuffles it).
  virtual void start_data(const TrainerState& state) = 0;
  // Draws the next micro-batch and returns its loss, not yet backpropagated. Records in `state`
  // the cursor after the batch, the tokens it consumed and anything else a resume needs
  // (mask_stream). Called under the run's autocast scope.
  virtual LossParts next_loss(TrainerState& state) = 0;

  // Whether evaluation runs at all (eval.every > 0 and held-out data exist).
  virtual bool evaluates() const = 0;
  // One evaluation at `step`: computes, writes its lines to `log`, prints when `print`.
  virtual EvalReport evaluate(int64_t step, ops::ComputePrecision precision, MetricsLog& log, bool print) = 0;

  // Writes the model part of a checkpoint into `dir` (a new, empty folder).
  virtual void write_checkpoint_model(const std::filesystem::path& dir) const = 0;
  // Writes the run's final output under run_dir and returns the folder written.
  virtual std::filesystem::path save_final(const std::filesystem::path& run_dir) const = 0;
};

// The loop itself: trains `task` as config.train says, into config.output_dir. `checkpoint` is the
// resolved checkpoint the task was built from ("" = fresh run).
TrainResult run_training(TrainTask& task, const RunConfig& config, const TrainOptions& options,
                         const std::filesystem::path& checkpoint);

}  // namespace ld::train
