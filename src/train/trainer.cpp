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
#include "dist/data_parallel.hpp"
#include "dist/world.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"
#include "train/checkpoint.hpp"
#include "train/grad_clip.hpp"
#include "train/loss_scaler.hpp"
#include "train/lr_schedule.hpp"
#include "train/metrics_log.hpp"
#include "train/optimizer.hpp"
#include "train/param_groups.hpp"
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
  Trainer(TrainTask& task, const RunConfig& config, TrainOptions options, const fs::path& checkpoint);
  TrainResult run();

 private:
  void setup_run_dir();
  void setup_data_parallel();
  void write_topology() const;
  void resume_from(const fs::path& checkpoint);
  void load_optimizer(const fs::path& file);
  std::unique_ptr<Optimizer> gathered_optimizer();
  void average_over_ranks(StepReport& r, int64_t tokens_before);

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
  dist::Communicator& comm_;                // the ranks training together
  bool main_rank_ = true;                   // rank 0 of comm_: prints and writes the run
  std::unique_ptr<dist::DataParallel> dp_;  // when this process is one of several ranks
  std::unique_ptr<Optimizer> optimizer_;
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

Trainer::Trainer(TrainTask& task, const RunConfig& config, TrainOptions options, const fs::path& checkpoint)
    : task_(task),
      c_(config),
      o_(std::move(options)),
      run_dir_(config.output_dir),
      comm_(o_.communicator ? *o_.communicator : dist::world()),
      main_rank_(comm_.rank() == 0),
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
  setup_data_parallel();
  state_.seed = uint64_t(t.seed);
  state_.optimizer = t.optimizer;
  if (checkpoint.empty())
    default_generator().set_state(state_.seed, 0);  // dropout draws, the same for every fresh run of a seed
  else
    resume_from(checkpoint);
  task_.start_data(state_);
  setup_run_dir();  // last: a run that cannot start leaves no trace
  first_step_ = state_.step;
  last_shown_tokens_ = state_.tokens_seen;
  started_ = last_shown_ = Clock::now();
}

// One process: the optimizer over the trainable parameters. Several ranks: data parallel over the
// world (dist/data_parallel.hpp), the optimizer over this rank's segments at ZeRO stages 1 and 2,
// every rank starting from rank 0's weights, each reading its own slice of the data.
void Trainer::setup_data_parallel() {
  const TrainSection& t = c_.train;
  dist::Communicator& world = comm_;
  LD_CHECK(c_.dist.tp == 1 && c_.dist.pp == 1, "dist.tp=", c_.dist.tp, ", dist.pp=", c_.dist.pp,
           ": tensor and pipeline parallel are not wired into the trainer yet; only data parallel runs");
  if (world.size() == 1) {
    optimizer_ = std::make_unique<Optimizer>(task_.trainable_parameters(), t);
    return;
  }
  LD_CHECK(c_.dist.zero == 0 || t.optimizer == "adamw", "dist.zero=", c_.dist.zero,
           ": ZeRO shards AdamW's state; with train.optimizer=", t.optimizer, " use dist.zero=0");
  const auto named = task_.trainable_parameters();
  dp_ = std::make_unique<dist::DataParallel>(
      world, named, dist::DataParallelOptions{.zero_stage = int(c_.dist.zero), .bucket_bytes = int64_t(c_.dist.bucket_mb * double(1 << 20))});
  for (const auto& [name, p] : named)
    if (p.requires_grad()) world.broadcast(p.raw(), p.numel(), dist::ElemType::f32, 0);
  task_.set_data_rank(world.rank(), world.size());
  if (dp_->zero_stage() == 0) {
    optimizer_ = std::make_unique<Optimizer>(named, t);
    return;
  }
  // Each segment keeps its parameter's name and weight decay.
  ParamGroupOptions options;
  options.weight_decay = float(t.weight_decay);
  std::vector<ParamGroup> groups = {{{}, options.weight_decay}, {{}, 0.0f}};
  std::vector<std::string> names[2];
  for (const dist::Segment& s : dp_->segments()) {
    const int g = decays(s.name, s.full, options) ? 0 : 1;
    groups[size_t(g)].params.push_back(s.part);
    names[g].push_back(s.name);
  }
  names[0].insert(names[0].end(), names[1].begin(), names[1].end());
  optimizer_ = std::make_unique<Optimizer>(std::move(groups), std::move(names[0]), t);
}

// RUN_DIR/topology.json: how the job that wrote the run was laid out (a resume may use another).
void Trainer::write_topology() const {
  const dist::Communicator& world = comm_;
  const json topology = {{"backend", world.backend_name()}, {"world_size", world.size()},
                         {"data_parallel", world.size()},   {"tensor_parallel", 1},
                         {"pipeline_parallel", 1},          {"zero_stage", dp_ ? dp_->zero_stage() : 0},
                         {"bucket_mb", c_.dist.bucket_mb}};
  write_file_atomically(run_dir_ / "topology.json", topology.dump(2) + "\n");
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
  load_optimizer(checkpoint / kOptimizerFile);
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

// ZeRO: every rank reads the whole (gathered) state and keeps its segments; else a plain load.
void Trainer::load_optimizer(const fs::path& file) {
  if (!dp_ || dp_->zero_stage() == 0) return optimizer_->load(file);
  Optimizer full(task_.trainable_parameters(), c_.train);
  full.load(file);
  const auto own = optimizer_->state_tensors();
  const auto all = full.state_tensors();
  for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
    std::vector<Tensor> parts, fulls;
    for (const dist::Segment& s : dp_->segments())
      for (const auto& [name, t] : own)
        if (name == s.name + suffix) parts.push_back(t);
    for (const std::string& p : dp_->parameter_names())
      for (const auto& [name, t] : all)
        if (name == p + suffix) fulls.push_back(t);
    dp_->scatter_from_full(fulls, parts);
  }
  optimizer_->set_steps(full.steps());
}

// ZeRO: the whole optimizer state gathered on rank 0 (nullptr elsewhere), so that a checkpoint
// is the same file whatever the number of ranks that wrote it and resumes on any number.
std::unique_ptr<Optimizer> Trainer::gathered_optimizer() {
  std::unique_ptr<Optimizer> full;
  if (main_rank_) full = std::make_unique<Optimizer>(task_.trainable_parameters(), c_.train);
  const auto own = optimizer_->state_tensors();
  for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
    std::vector<Tensor> parts, fulls(dp_->parameter_names().size());
    for (const dist::Segment& s : dp_->segments())
      for (const auto& [name, t] : own)
        if (name == s.name + suffix) parts.push_back(t);
    if (full)
      for (size_t i = 0; i < fulls.size(); ++i)
        for (const auto& [name, t] : full->state_tensors())
          if (name == dp_->parameter_names()[i] + suffix) fulls[i] = t;
    dp_->gather_to_rank0(parts, fulls);
  }
  if (full) full->set_steps(optimizer_->steps());
  return full;
}

// Data parallel: the step's losses become the means over the ranks and the tokens the job's.
void Trainer::average_over_ranks(StepReport& r, int64_t tokens_before) {
  double sums[3] = {r.loss, r.lm_loss, r.aux_loss};
  dist::Communicator& world = comm_;
  world.all_reduce(sums, 3, dist::ElemType::f64, dist::ReduceOp::sum);
  r.loss = sums[0] / world.size(), r.lm_loss = sums[1] / world.size(), r.aux_loss = sums[2] / world.size();
  state_.tokens_seen = tokens_before + (state_.tokens_seen - tokens_before) * world.size();
}

void Trainer::diverged(int64_t step, const char* what, double value) const {
  const auto saved = list_checkpoints(run_dir_);
  const std::string shown = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  LD_FAIL("step ", step, ": the ", what, " is ", shown, "; training stopped. ",
          saved.empty() ? std::string("No checkpoint was written before it.")
                        : "The last good checkpoint is " + saved.back().second.string() +
                              " (resume from it with a lower train.lr, more warmup or train.grad_clip)");
}

StepReport Trainer::train_step() {
  const Clock::time_point start = Clock::now();
  const TrainSection& t = c_.train;
  StepReport r;
  r.step = state_.step + 1;
  r.lr = lr_at(schedule_, state_.step);
  optimizer_->set_lr(r.lr);
  optimizer_->zero_grad();
  if (dp_) dp_->start_step();
  const int64_t tokens_before = state_.tokens_seen;
  const double inv_accum = 1.0 / double(t.grad_accum);
  for (int64_t k = 0; k < t.grad_accum; ++k) {
    if (dp_) dp_->begin_micro_batch(k + 1 == t.grad_accum);  // only the last backward communicates
    ops::AutocastScope autocast(precision_);  // forward and backward products (mixed precision)
    const LossParts parts = task_.next_loss(state_);
    const Tensor loss = t.grad_accum == 1 ? parts.loss : ops::scale(parts.loss, inv_accum);
    scaler_.scaled_loss(loss).backward();
    r.loss += parts.loss.item() * inv_accum;
    r.lm_loss += parts.lm_loss.item() * inv_accum;
    if (parts.aux_loss.defined()) r.aux_loss += parts.aux_loss.item() * inv_accum;
  }
  if (dp_) {
    dp_->finish_backward();
    average_over_ranks(r, tokens_before);
  }
  if (!std::isfinite(r.loss) && !scaler_.enabled()) diverged(r.step, "loss", r.loss);
  const std::vector<Tensor>& params = optimizer_->params();
  scaler_.unscale(params);
  // A non-finite gradient on any rank makes the global norm non-finite, so every rank skips alike.
  r.grad_norm = dp_ ? dp_->grad_norm() : grad_norm(params);
  if (t.grad_clip > 0) clip_grads_to(params, r.grad_norm, t.grad_clip);
  if (!std::isfinite(r.grad_norm)) {
    if (!scaler_.enabled()) diverged(r.step, "gradient norm", r.grad_norm);
    scaler_.record_overflow();
  }
  r.skipped = scaler_.step_skipped();
  if (!r.skipped) {
    optimizer_->step();
    if (dp_) dp_->finish_step();  // ZeRO: every rank gets the updated segments
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
  const std::unique_ptr<Optimizer> gathered = dp_ && dp_->zero_stage() > 0 ? gathered_optimizer() : nullptr;
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
  }
  int64_t saved_at = state_.step;
  while (state_.step < max_steps) {
    const StepReport r = train_step();
    result.losses.push_back(r.loss);
    report_step(r);
    if (o_.on_step) o_.on_step(r);
    if (task_.evaluates() && due(c_.eval.every) && main_rank_) {
      EvalReport e = evaluate();
      result.val_losses.push_back(e.val_loss);
      if (o_.on_eval) o_.on_eval(e);
    }
    // Every rank stops at the same step (a signal may reach them at different moments).
    const bool stop = dp_ ? comm_.all_reduce_max(stop_requested() ? 1.0 : 0.0) > 0 : stop_requested();
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
  Trainer trainer(task, config, options, checkpoint);
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
