#include "train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "dist/world.hpp"
#include "ops/autocast.hpp"
#include "ops/working_weights.hpp"
#include "ops/ops.hpp"
#include "train/checkpoint.hpp"
#include "train/grad_clip.hpp"
#include "train/loss_scaler.hpp"
#include "train/lr_schedule.hpp"
#include "train/metrics_log.hpp"
#include "train/optimizer.hpp"
#include "train/parallel_training.hpp"
#include "train/pretrain_task.hpp"
#include "train/train_task.hpp"

namespace ld::train {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

void check_precision_supported(const std::string& precision) {
  if (precision == "fp32" || precision == "bf16" || precision == "fp16") return;
  LD_FAIL("train.precision: \"", precision, "\" is not one of fp32, bf16, fp16");
}

namespace {

ops::ComputePrecision training_precision(const std::string& name) {
  check_precision_supported(name);  // its message names the config key
  return ops::compute_precision_from_name(name);
}

LrSchedule checked_schedule(const TrainSection& t) {
  LrSchedule schedule{.lr = t.lr,
                      .warmup_steps = t.warmup_steps,
                      .max_steps = t.max_steps,
                      .min_lr_ratio = t.min_lr_ratio,
                      .decay = parse_lr_decay(t.schedule)};
  try {
    validate(schedule);
  } catch (const Error& e) {
    LD_FAIL("train (lr, warmup_steps, max_steps, min_lr_ratio): ", e.what());
  }
  return schedule;
}

std::string format_duration(double seconds) {
  const long s = long(seconds + 0.5);
  char buf[48];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

class Trainer {
 public:
  Trainer(TrainTask& task, const RunConfig& config, TrainOptions options, const fs::path& checkpoint,
          ParallelTraining& parallel);
  TrainResult run();

 private:
  void setup_run_dir();
  void write_topology() const;
  void resume_from(const fs::path& checkpoint);
  void setup_working_weights();
  void run_micro_batches(StepReport& r);

  StepReport train_step();
  [[noreturn]] void diverged(int64_t step, const char* what, double value) const;
  void report_step(const StepReport& r);
  EvalReport evaluate();
  void save(TrainResult& result);

  bool due(int64_t every) const { return every > 0 && state_.step % every == 0; }

  TrainTask& task_;
  const RunConfig& c_;
  TrainOptions o_;
  fs::path run_dir_;
  ParallelTraining& parallel_;  // the other ranks of the job, if any
  bool main_rank_ = true;       // rank 0 prints and writes the run
  std::unique_ptr<Optimizer> optimizer_;
  // bf16: the products' bf16 copies of the trainable weights (kept current by the optimizer; again
  // after ZeRO's gather, which writes the segments other ranks updated) and of the frozen ones
  std::unique_ptr<ops::WorkingWeights> working_, frozen_working_;
  bool refresh_working_after_step_ = false;
  ops::ComputePrecision precision_ = ops::ComputePrecision::f32;  // the matmuls' (autocast)
  LossScaler scaler_;
  LrSchedule schedule_;
  TrainerState state_;
  std::unique_ptr<MetricsLog> log_;
  int64_t first_step_ = 0;  // the step this call started from
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_shown_ = Clock::now();  // the last progress line, for its rate
  int64_t last_shown_tokens_ = 0;
};

Trainer::Trainer(TrainTask& task, const RunConfig& config, TrainOptions options, const fs::path& checkpoint,
                 ParallelTraining& parallel)
    : task_(task),
      c_(config),
      o_(std::move(options)),
      run_dir_(config.output_dir),
      parallel_(parallel),
      main_rank_(parallel.main_rank()),
      precision_(training_precision(config.train.precision)),
      scaler_(LossScalerOptions{.init_scale = o_.initial_loss_scale,
                                .growth_factor = 2.0,
                                .backoff_factor = 0.5,
                                .growth_interval = 2000,
                                .enabled = config.train.precision == "fp16"}),
      schedule_(checked_schedule(config.train)) {
  const TrainSection& t = c_.train;
  if (t.threads > 0) set_num_threads(int(t.threads));
  if (!main_rank_) o_.print = false;  // rank 0 speaks and writes for the job
  optimizer_ = parallel_.make_optimizer();
  state_.seed = uint64_t(t.seed);
  state_.optimizer = t.optimizer;
  if (checkpoint.empty())
    default_generator().set_state(state_.seed, 0);  // dropout draws, the same for every fresh run of a seed
  else
    resume_from(checkpoint);
  setup_working_weights();  // after the resume: from the weights the run continues with
  task_.start_data(state_);
  setup_run_dir();  // last: a run that cannot start leaves no trace
  first_step_ = state_.step;
  last_shown_tokens_ = state_.tokens_seen;
  started_ = last_shown_ = Clock::now();
}

void Trainer::setup_working_weights() {
  const TrainSection& t = c_.train;
  LD_CHECK(!t.stochastic_rounding || (precision_ == ops::ComputePrecision::bf16 && t.bf16_weights),
           "train.stochastic_rounding rounds the bf16 weight copies of train.precision bf16 with train.bf16_weights "
           "true; here train.precision is ", t.precision, " and train.bf16_weights ", t.bf16_weights ? "true" : "false");
  LD_CHECK(!t.stochastic_rounding || !parallel_.model_parallel(),
           "train.stochastic_rounding: not available with dist.tp or dist.pp above 1");
  if (precision_ != ops::ComputePrecision::bf16 || !t.bf16_weights || parallel_.model_parallel()) return;
  std::vector<Tensor> trainable, frozen;
  for (const auto& [name, p] : task_.trainable_parameters()) trainable.push_back(p);
  for (const auto& [name, p] : task_.model().named_parameters())
    if (!p.requires_grad()) frozen.push_back(p);
  working_ = std::make_unique<ops::WorkingWeights>(trainable, t.stochastic_rounding, uint64_t(t.seed), state_.step);
  frozen_working_ = std::make_unique<ops::WorkingWeights>(frozen, /*stochastic=*/false, 0);
  optimizer_->set_working_weights(working_.get());
  refresh_working_after_step_ = c_.dist.zero > 0;
}

// RUN_DIR/topology.json: how the job that wrote the run was laid out (a resume may use another).
void Trainer::write_topology() const {
  write_file_atomically(run_dir_ / "topology.json", parallel_.topology(c_).dump(2) + "\n");
}

void Trainer::setup_run_dir() {
  if (!main_rank_) return;
  std::error_code ec;
  if (o_.resume.empty()) {
    const bool has_run = fs::exists(run_dir_ / kMetricsFile, ec) || !list_checkpoints(run_dir_).empty();
    LD_CHECK(!has_run, "output_dir ", run_dir_.string(), " already holds a run (metrics.jsonl or checkpoints): ",
             "continue it with --resume ", run_dir_.string(), ", or choose another --output_dir=");
  }
  fs::create_directories(run_dir_, ec);
  LD_CHECK(!ec, run_dir_.string(), ": cannot create the run folder (", ec.message(), ")");
  save_resolved(c_, run_dir_);
  write_topology();
  log_ = std::make_unique<MetricsLog>(run_dir_ / kMetricsFile);
}

// The weights (or adapter) came with the task; here the optimizer, the loss scale, the generator and
// the loop's state.
void Trainer::resume_from(const fs::path& checkpoint) {
  TrainerState saved = read_trainer_state(checkpoint);
  parallel_.load_optimizer(*optimizer_, checkpoint / kOptimizerFile);
  LD_CHECK(optimizer_->steps() == saved.step, (checkpoint / kOptimizerFile).string(), ": optimizer step ",
           optimizer_->steps(), " disagrees with ", kTrainerStateFile, "'s step ", saved.step);
  scaler_.load_state_dict(saved.loss_scaler);
  default_generator().set_state(saved.generator_seed, saved.generator_offset);
  if (saved.seed != state_.seed && o_.print)
    std::printf("note: resuming with the checkpoint's seed %llu (train.seed=%llu is ignored: the data order "
                "and masking continue as they were)\n",
                (unsigned long long)saved.seed, (unsigned long long)state_.seed);
  saved.optimizer = state_.optimizer;
  state_ = saved;
  if (o_.print)
    std::printf("resuming from %s: step %lld, %lld tokens seen\n", checkpoint.string().c_str(),
                (long long)state_.step, (long long)state_.tokens_seen);
}

void Trainer::diverged(int64_t step, const char* what, double value) const {
  const auto saved = list_checkpoints(run_dir_);
  const std::string shown = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  LD_FAIL("step ", step, ": the ", what, " is ", shown, "; training stopped. ",
          saved.empty() ? std::string("No checkpoint was written before it.")
                        : "The last good checkpoint is " + saved.back().second.string() +
                              " (resume from it with a lower train.lr, more warmup or train.grad_clip)");
}

// The step's forwards and backwards: the trainer's loop over next_loss, or the task's own
// (a pipeline stage schedules its micro-batches itself). r gets the mean losses.
void Trainer::run_micro_batches(StepReport& r) {
  const int64_t accum = c_.train.grad_accum;
  const double inv_accum = 1.0 / double(accum);
  auto add = [&](const LossParts& parts) {
    r.loss += parts.loss.item() * inv_accum;
    r.lm_loss += parts.lm_loss.item() * inv_accum;
    if (parts.aux_loss.defined()) r.aux_loss += parts.aux_loss.item() * inv_accum;
  };
  {
    ops::AutocastScope autocast(precision_);
    if (auto done = task_.run_step_micro_batches(state_, accum)) {
      for (const LossParts& parts : *done) add(parts);
      return;
    }
  }
  for (int64_t k = 0; k < accum; ++k) {
    parallel_.begin_micro_batch(k + 1 == accum);  // only the last backward communicates
    ops::AutocastScope autocast(precision_);      // forward and backward products (mixed precision)
    const LossParts parts = task_.next_loss(state_);
    const Tensor loss = accum == 1 ? parts.loss : ops::scale(parts.loss, inv_accum);
    scaler_.scaled_loss(loss).backward();
    add(parts);
  }
}

StepReport Trainer::train_step() {
  const Clock::time_point start = Clock::now();
  const TrainSection& t = c_.train;
  StepReport r;
  r.step = state_.step + 1;
  r.lr = lr_at(schedule_, state_.step);
  optimizer_->set_lr(r.lr);
  optimizer_->zero_grad();
  parallel_.start_step();
  const int64_t tokens_before = state_.tokens_seen;
  run_micro_batches(r);
  parallel_.finish_backward();
  parallel_.reduce_step(r, state_, tokens_before);
  if (!std::isfinite(r.loss) && !scaler_.enabled()) diverged(r.step, "loss", r.loss);
  const std::vector<Tensor>& params = optimizer_->params();
  scaler_.unscale(params);
  // A non-finite gradient on any rank makes the global norm non-finite, so every rank skips alike.
  r.grad_norm = parallel_.grad_norm(*optimizer_);
  if (t.grad_clip > 0) clip_grads_to(params, r.grad_norm, t.grad_clip);
  if (!std::isfinite(r.grad_norm)) {
    if (!scaler_.enabled()) diverged(r.step, "gradient norm", r.grad_norm);
    scaler_.record_overflow();
  }
  r.skipped = scaler_.step_skipped();
  if (!r.skipped) {
    optimizer_->step();
    parallel_.finish_step();  // ZeRO: every rank gets the updated segments
    if (working_ && refresh_working_after_step_) working_->refresh(optimizer_->steps());
  }
  scaler_.update();
  state_.step = r.step;
  r.tokens = state_.tokens_seen;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.tokens_per_s = seconds > 0 ? double(state_.tokens_seen - tokens_before) / seconds : 0.0;
  return r;
}

void Trainer::report_step(const StepReport& r) {
  const int64_t flops_per_token = task_.flops_per_token();
  const double mfu = o_.peak_tflops > 0 ? double(flops_per_token) * r.tokens_per_s / (o_.peak_tflops * 1e12) : 0.0;
  json line = {{"type", "train"},   {"step", r.step},     {"loss", r.loss},           {"lr", r.lr},
               {"tokens_per_s", r.tokens_per_s},          {"tokens", r.tokens},       {"grad_norm", r.grad_norm},
               {"elapsed_s", std::chrono::duration<double>(Clock::now() - started_).count()}};
  if (!log_) return;  // not rank 0
  if (task_.splits_aux_loss()) {
    line["lm_loss"] = r.lm_loss;
    line["aux_loss"] = r.aux_loss;
  }
  if (o_.peak_tflops > 0) line["mfu"] = mfu;
  if (scaler_.enabled()) {
    line["loss_scale"] = scaler_.scale();
    line["skipped"] = r.skipped;
  }
  log_->write(line);
  const bool show = r.step == first_step_ + 1 || r.step % std::max<int64_t>(c_.log.every, 1) == 0 ||
                    r.step == c_.train.max_steps || r.skipped;
  if (!o_.print || !show) return;
  const Clock::time_point now = Clock::now();
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double per_step = elapsed / double(r.step - first_step_);
  // The rate shown is over the steps since the last line (one step's rate is noisy).
  const double interval = std::chrono::duration<double>(now - last_shown_).count();
  const double shown_rate = interval > 0 ? double(r.tokens - last_shown_tokens_) / interval : r.tokens_per_s;
  last_shown_ = now;
  last_shown_tokens_ = r.tokens;
  std::string extra;
  if (o_.peak_tflops > 0) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " | MFU %.1f%%",
                  100.0 * double(flops_per_token) * shown_rate / (o_.peak_tflops * 1e12));
    extra = buf;
  }
  if (scaler_.enabled()) {
    char buf[80];
    std::snprintf(buf, sizeof buf, " | loss scale %g%s", scaler_.scale(),
                  r.skipped ? " | skipped (fp16 overflow)" : "");
    extra += buf;
  }
  std::printf("step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s%s | ETA %s\n",
              (long long)r.step, (long long)c_.train.max_steps, r.loss, r.lr, r.grad_norm, shown_rate,
              extra.c_str(), format_duration(per_step * double(c_.train.max_steps - r.step)).c_str());
  std::fflush(stdout);
}

EvalReport Trainer::evaluate() {
  EvalReport r = task_.evaluate(state_.step, precision_, *log_, o_.print);
  if (std::isfinite(r.val_loss)) state_.best_val_loss = std::min(state_.best_val_loss, r.val_loss);
  return r;
}

void Trainer::save(TrainResult& result) {
  state_.loss_scaler = scaler_.state_dict();
  state_.generator_seed = default_generator().seed();
  state_.generator_offset = default_generator().offset();
  parallel_.gather_model();
  const std::unique_ptr<Optimizer> gathered = parallel_.gathered_optimizer(*optimizer_);
  if (!main_rank_) return;  // the weights are the same on every rank: rank 0 writes
  result.last_checkpoint = save_checkpoint(
      run_dir_, state_.step, [&](const fs::path& dir) { task_.write_checkpoint_model(dir); },
      gathered ? *gathered : *optimizer_, state_);
  prune_checkpoints(run_dir_, c_.checkpoint.keep_last);
  if (o_.print) std::printf("checkpoint %s\n", result.last_checkpoint.string().c_str());
}

TrainResult Trainer::run() {
  TrainResult result;
  const int64_t max_steps = c_.train.max_steps;
  if (o_.print) {
    char mfu[96] = "no MFU (no --peak-tflops given)";
    if (o_.peak_tflops > 0)
      std::snprintf(mfu, sizeof mfu, "MFU against a peak of %g TFLOP/s (--peak-tflops), %lld FLOPs/token",
                    o_.peak_tflops, (long long)task_.flops_per_token());
    std::printf("%s: %lld x %lld tokens x %lld micro-batches per step, %lld steps, %s\n", task_.describe().c_str(),
                (long long)c_.train.batch_size, (long long)c_.train.seq_len, (long long)c_.train.grad_accum,
                (long long)max_steps, mfu);
    if (const std::string job = parallel_.describe(*optimizer_); !job.empty()) std::printf("%s\n", job.c_str());
  }
  int64_t saved_at = state_.step;
  while (state_.step < max_steps) {
    const StepReport r = train_step();
    result.losses.push_back(r.loss);
    report_step(r);
    if (o_.on_step) o_.on_step(r);
    if (task_.evaluates() && due(c_.eval.every)) {
      parallel_.gather_model();  // rank 0 evaluates the whole model
      if (main_rank_) {
        EvalReport e = evaluate();
        result.val_losses.push_back(e.val_loss);
        if (o_.on_eval) o_.on_eval(e);
      }
    }
    // Every rank stops at the same step (a signal may reach them at different moments).
    const bool stop = parallel_.any_rank(stop_requested());
    if (due(c_.checkpoint.every) || state_.step == max_steps || stop) {
      save(result);
      saved_at = state_.step;
    }
    if (stop) {
      result.interrupted = true;
      clear_stop_request();  // handled
      if (o_.print) std::printf("stopped at step %lld on request\n", (long long)state_.step);
      break;
    }
  }
  if (saved_at != state_.step) save(result);
  if (result.last_checkpoint.empty()) {  // resumed at max_steps: nothing new to save
    const auto found = list_checkpoints(run_dir_);
    if (!found.empty()) result.last_checkpoint = found.back().second;
  }
  if (!result.interrupted) parallel_.gather_model();
  if (!result.interrupted && main_rank_) {
    const fs::path final_dir = task_.save_final(run_dir_);
    if (o_.print) std::printf("model saved to %s\n", final_dir.string().c_str());
  }
  result.step = state_.step;
  return result;
}

// Keys only `liandan finetune` reads, refused here rather than ignored (at their defaults they pass:
// a resolved.yaml lists every key).
void refuse_finetune_keys(const RunConfig& c) {
  std::vector<std::string> found;
  for (const char* section : {"finetune", "lora", "adapter", "prompt_tuning", "multitask", "continual"})
    for (const std::string& k : c.given_in(section))
      if (c.set_away_from_default(k)) found.push_back(k);
  for (const char* key : {"data.train", "data.val", "data.template", "data.packing", "data.labels"})
    if (c.set_away_from_default(key)) found.push_back(key);
  if (found.empty()) return;
  std::string keys;
  for (const std::string& k : found) keys += (keys.empty() ? "" : ", ") + k;
  LD_FAIL("pretrain: ", keys, ": fine-tuning options, meaningless for pretraining (use `liandan finetune`)");
}

}  // namespace

TrainResult run_training(TrainTask& task, const RunConfig& config, const TrainOptions& options,
                         const fs::path& checkpoint) {
  ParallelTraining parallel(task, config, options.communicator ? *options.communicator : dist::world());
  Trainer trainer(task, config, options, checkpoint, parallel);
  return trainer.run();
}

TrainResult pretrain(const RunConfig& config, const TrainOptions& options) {
  refuse_finetune_keys(config);
  training_precision(config.train.precision);  // config errors before the dataset and the model are read
  checked_schedule(config.train);
  if (config.train.threads > 0) set_num_threads(int(config.train.threads));
  const fs::path checkpoint = options.resume.empty() ? fs::path() : resolve_resume(options.resume);
  PretrainTask task(config, checkpoint);
  return run_training(task, config, options, checkpoint);
}

}  // namespace ld::train
