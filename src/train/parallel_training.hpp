#pragma once
// What the training loop does differently when it is one of several ranks (mpirun -np N): the
// grid dp x tp x pp of dist/process_grid.hpp from dist.tp and dist.pp, the task's model split over
// the tensor-parallel or pipeline group (TrainTask::set_model_parallel), data parallel over the rest
// (dist/data_parallel.hpp, ZeRO stages from dist.zero), and the bookkeeping that keeps one job's
// numbers equal to one process's: the step's loss averaged over the ranks, tokens counted for the
// job, the gradient norm of the whole model, the same stop step on every rank, and checkpoints that
// hold the whole optimizer state gathered on rank 0 (the same files as a one-process run's, so they
// resume on any number of ranks). With one process every call is a no-op or the plain thing.
//
// Combinations: any dp x tp x pp grid (tp and pp for dense GPT-2; both: each pipeline stage is
// tensor parallel), data parallel at ZeRO 0, 1 or 2 over whatever part of the model a rank holds.
#include <filesystem>
#include <memory>
#include <string>
#include <nlohmann/json.hpp>

#include "dist/communicator.hpp"
#include "dist/data_parallel.hpp"
#include "dist/process_grid.hpp"
#include "train/optimizer.hpp"
#include "train/run_config.hpp"
#include "train/train_task.hpp"
#include "train/trainer.hpp"

namespace ld::train {

class ParallelTraining {
 public:
  // Splits the world, the task's model and its data (collective). Every rank starts from rank 0's
  // weights.
  ParallelTraining(TrainTask& task, const RunConfig& config, dist::Communicator& world);

  bool main_rank() const { return world_.rank() == 0; }
  bool model_parallel() const { return grid_.tp > 1 || grid_.pp > 1; }
  const dist::ProcessGrid& grid() const { return grid_; }

  // The optimizer over what this rank updates: its part of the model, or its ZeRO segments.
  std::unique_ptr<Optimizer> make_optimizer() const;
  // Restores a checkpoint's optimizer.safetensors (always the whole model's state) into `optimizer`.
  void load_optimizer(Optimizer& optimizer, const std::filesystem::path& file) const;
  // The whole model's optimizer state on rank 0, for a checkpoint (nullptr elsewhere, and when
  // `optimizer` already is the whole state). Collective.
  std::unique_ptr<Optimizer> gathered_optimizer(const Optimizer& optimizer) const;

  // The step's gradient flow (see dist::DataParallel).
  void start_step();
  void begin_micro_batch(bool last);
  void finish_backward();
  void finish_step();
  // The step's loss parts averaged over the ranks and state.tokens_seen counted for the job.
  void reduce_step(StepReport& r, TrainerState& state, int64_t tokens_before) const;
  // The L2 norm of the whole model's averaged gradient.
  double grad_norm(const Optimizer& optimizer) const;
  // True on every rank when it is on any (a stop request).
  bool any_rank(bool flag) const;
  // Brings the whole model up to date on rank 0 (model parallel), before an evaluation or a save.
  void gather_model() { if (model_parallel()) task_.gather_model(); }

  // One line for the start of a multi-rank run: the layout, and what each rank holds of the
  // optimizer state and gradients against the whole model's ("" with one process).
  std::string describe(const Optimizer& optimizer) const;
  // For RUN_DIR/topology.json.
  nlohmann::json topology(const RunConfig& config) const;
  double exposed_comm_seconds() const { return dp_ ? dp_->stats().exposed_seconds : 0.0; }

 private:
  TrainTask& task_;
  const RunConfig& c_;
  dist::Communicator& world_;
  dist::ProcessGrid grid_;
  std::unique_ptr<dist::DataParallel> dp_;  // when dp > 1
};

}  // namespace ld::train
