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

namespace ld::train {

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
