#include "train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "data/loader.hpp"
#include "infer/generate.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "models/load_weights.hpp"
#include "ops/ops.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/checkpoint.hpp"
#include "train/grad_clip.hpp"
#include "train/loss_scaler.hpp"
#include "train/lr_schedule.hpp"
#include "train/metrics_log.hpp"
#include "train/objectives.hpp"
#include "train/optimizer.hpp"
#include "train/plan.hpp"

namespace ld::train {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

void check_precision_supported(const std::string& precision) {
  if (precision == "fp32") return;
  LD_CHECK(precision != "bf16" && precision != "fp16", "train.precision: ", precision,
           " is not supported on the CPU backend yet (training needs half-precision GEMMs there); use fp32");
  LD_FAIL("train.precision: \"", precision, "\" is not one of fp32, bf16, fp16");
}

namespace {

int64_t checkpoint_every_k(const TrainSection& t) {
  if (t.checkpointing == "none") return 0;
  if (t.checkpointing == "all") return 1;
  LD_CHECK(t.checkpointing == "every_k", "train.checkpointing: \"", t.checkpointing,
           "\" is not one of none, all, every_k");
  return t.checkpoint_every_k;
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

// Text on one terminal line: newlines shown as \n.
std::string one_line(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '\n') out += "\\n";
    else out += ch;
  }
  return out;
}

// The tokenizer folder or file a run uses: data.tokenizer, else the one the dataset was prepared
// with when index.json names something on this machine; "" when neither.
fs::path tokenizer_path(const RunConfig& c, const data::DatasetIndex& index) {
  if (!c.data.tokenizer.empty()) return c.data.tokenizer;
  std::error_code ec;
  if (!index.tokenizer.empty() && fs::exists(index.tokenizer, ec)) return index.tokenizer;
  return {};
}

class Trainer {
 public:
  Trainer(const RunConfig& config, TrainOptions options);
  TrainResult run();

 private:
  void setup_run_dir();
  void build_model();
  void setup_tokenizer();
  void setup_masking();
  void resume_from(const fs::path& checkpoint);

  StepReport train_step();
  LossParts micro_loss(const data::Batch& batch, uint64_t mask_stream) const;
  [[noreturn]] void diverged(int64_t step, const char* what, double value) const;
  void report_step(const StepReport& r);
  EvalReport evaluate();
  void save(TrainResult& result);

  // The folder whose tokenizer files go into checkpoints and the final model ("" = none known).
  fs::path tokenizer_folder() const {
    if (tokenizer_path_.empty()) return {};
    return fs::is_directory(tokenizer_path_) ? tokenizer_path_ : tokenizer_path_.parent_path();
  }
  nn::Module& module() const { return lm_ ? static_cast<nn::Module&>(*lm_) : static_cast<nn::Module&>(*bert_); }
  bool mlm() const { return bert_ != nullptr; }
  bool due(int64_t every) const { return every > 0 && state_.step % every == 0; }

  const RunConfig& c_;
  TrainOptions o_;
  fs::path run_dir_;
  data::DatasetIndex index_;
  int64_t seq_len_ = 0;
  std::unique_ptr<models::CausalLM> lm_;
  std::unique_ptr<models::BertForMaskedLM> bert_;
  fs::path tokenizer_path_;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  MlmMasking masking_;
  std::unique_ptr<Optimizer> optimizer_;
  LossScaler scaler_;
  LrSchedule schedule_;
  TrainerState state_;
  std::unique_ptr<data::DataLoader> loader_;
  std::unique_ptr<data::EvalLoader> eval_loader_;
  std::unique_ptr<MetricsLog> log_;
  int64_t flops_per_token_ = 0;
  int64_t first_step_ = 0;  // the step this call started from
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_shown_ = Clock::now();  // the last progress line, for its rate
  int64_t last_shown_tokens_ = 0;
};

Trainer::Trainer(const RunConfig& config, TrainOptions options)
    : c_(config),
      o_(std::move(options)),
      run_dir_(config.output_dir),
      scaler_(LossScalerOptions{.init_scale = 65536.0,
                                .growth_factor = 2.0,
                                .backoff_factor = 0.5,
                                .growth_interval = 2000,
                                .enabled = config.train.precision == "fp16"}) {
  const TrainSection& t = c_.train;
  check_precision_supported(t.precision);
  if (t.threads > 0) set_num_threads(int(t.threads));
  LD_CHECK(!c_.data.path.empty(), "data.path: required (a folder prepared by `liandan data prepare`)");
  index_ = data::read_dataset_index(c_.data.path);
  seq_len_ = t.seq_len;
  schedule_ = LrSchedule{.lr = t.lr,
                         .warmup_steps = t.warmup_steps,
                         .max_steps = t.max_steps,
                         .min_lr_ratio = t.min_lr_ratio,
                         .decay = parse_lr_decay(t.schedule)};
  try {
    validate(schedule_);
  } catch (const Error& e) {
    LD_FAIL("train (lr, warmup_steps, max_steps, min_lr_ratio): ", e.what());
  }
  build_model();
  LD_CHECK(index_.vocab_size <= c_.model.hf.stack.vocab_size, c_.data.path, ": the dataset's vocab_size ",
           index_.vocab_size, " is larger than the model's (", c_.model.hf.stack.vocab_size,
           "); set the model's vocab_size to at least ", index_.vocab_size);
  setup_tokenizer();
  if (mlm()) setup_masking();
  optimizer_ = std::make_unique<Optimizer>(module().named_parameters(), t);
  state_.seed = uint64_t(t.seed);
  state_.optimizer = t.optimizer;
  flops_per_token_ = training_flops_per_token(c_.model.hf, seq_len_);
  if (c_.eval.every > 0) {
    try {
      eval_loader_ = std::make_unique<data::EvalLoader>(
          c_.data.path, "val",
          data::EvalOptions{.batch_size = t.batch_size, .seq_len = seq_len_, .max_batches = c_.eval.batches,
                            .rank = 0, .world_size = 1});
    } catch (const Error& e) {
      LD_FAIL(e.what(), " (evaluation reads the val split; set eval.every=0 to train without it)");
    }
  }
  if (!o_.resume.empty()) resume_from(resolve_resume(o_.resume));
  loader_ = std::make_unique<data::DataLoader>(
      c_.data.path, "train",
      data::LoaderOptions{.batch_size = t.batch_size, .seq_len = seq_len_, .seed = state_.seed, .shuffle = true,
                          .rank = 0, .world_size = 1, .prefetch = 2},
      state_.cursor);
  setup_run_dir();  // last: a run that cannot start leaves no trace
  first_step_ = state_.step;
  last_shown_tokens_ = state_.tokens_seen;
  started_ = last_shown_ = Clock::now();
}

namespace {

// The model's config with the dataset's end-of-text id as its EOS (and as BOS when the config's
// BOS lies outside the vocabulary: GPT-2's 50256 default on a small vocabulary), so the saved
// folder's generation stops where the training documents ended.
io::HfModelConfig with_dataset_special_ids(io::HfModelConfig hf, const data::DatasetIndex& index) {
  if (index.eos_id < 0) return hf;
  hf.eos_token_id = index.eos_id;
  hf.eos_token_ids = {index.eos_id};
  if (hf.bos_token_id >= hf.stack.vocab_size) hf.bos_token_id = index.eos_id;
  return hf;
}

}  // namespace

void Trainer::build_model() {
  const io::HfModelConfig hf = with_dataset_special_ids(c_.model.hf, index_);
  const std::string& objective = c_.train.objective;
  LD_CHECK(seq_len_ >= 1 && seq_len_ <= hf.stack.n_positions, "train.seq_len=", seq_len_,
           " must be in [1, the model's context length ", hf.stack.n_positions, "]");
  Generator gen(uint64_t(c_.train.seed));
  if (hf.is_causal_lm()) {
    LD_CHECK(objective == "clm" || objective == "auto", "train.objective=", objective, ": a ", hf.model_type,
             " model is a causal LM; use clm");
    lm_ = models::make_causal_lm(hf, gen);
    lm_->set_checkpointing(checkpoint_every_k(c_.train));
    return;
  }
  LD_CHECK(objective == "mlm" || objective == "auto", "train.objective=", objective,
           ": a bert model is trained as a masked LM; use mlm");
  LD_CHECK(hf.architecture.empty() || hf.architecture == "BertForMaskedLM", "model: architecture ",
           hf.architecture, " cannot be pretrained; pretraining builds BertForMaskedLM");
  bert_ = std::make_unique<models::BertForMaskedLM>(hf, gen);
  bert_->bert->encoder->checkpoint_every = checkpoint_every_k(c_.train);
}

void Trainer::setup_tokenizer() {
  tokenizer_path_ = tokenizer_path(c_, index_);
  const bool samples = lm_ && c_.eval.every > 0 && !c_.eval.samples.empty();
  const bool mask_id = mlm() && c_.train.mask_token_id < 0;  // the mask id comes from the tokenizer
  if (!samples && !mask_id) return;
  if (tokenizer_path_.empty()) {
    LD_CHECK(!samples, "eval.samples: continuing prompts needs the tokenizer; set data.tokenizer (the dataset's, \"",
             index_.tokenizer, "\", is not a file here)");
    return;  // masked LM: the mask id must then come from elsewhere (setup_masking says so)
  }
  tokenizer_ = tok::load_tokenizer(tokenizer_path_);
}

void Trainer::setup_masking() {
  masking_.probability = c_.train.mlm_probability;
  masking_.vocab_size = c_.model.hf.stack.vocab_size;
  masking_.seed = uint64_t(c_.train.seed);
  masking_.mask_token_id = c_.train.mask_token_id;
  if (index_.eos_id >= 0) masking_.never_mask.push_back(index_.eos_id);
  if (masking_.mask_token_id < 0 && tokenizer_) {
    for (const char* name : {"[MASK]", "<mask>"})
      if (auto id = tokenizer_->token_to_id(name)) {
        masking_.mask_token_id = *id;
        break;
      }
  }
  LD_CHECK(masking_.mask_token_id >= 0, "masked LM: no mask token id: set train.mask_token_id, or use a tokenizer with ",
           "[MASK] or <mask> (", tokenizer_path_.empty() ? std::string("none is known: set data.tokenizer")
                                                         : tokenizer_path_.string() + " has neither", ")");
  LD_CHECK(masking_.mask_token_id < masking_.vocab_size, "train.mask_token_id=", masking_.mask_token_id,
           " is outside the model's vocabulary [0, ", masking_.vocab_size, ")");
}

void Trainer::setup_run_dir() {
  std::error_code ec;
  if (o_.resume.empty()) {
    const bool has_run = fs::exists(run_dir_ / kMetricsFile, ec) || !list_checkpoints(run_dir_).empty();
    LD_CHECK(!has_run, "output_dir ", run_dir_.string(), " already holds a run (metrics.jsonl or checkpoints): ",
             "continue it with --resume ", run_dir_.string(), ", or choose another --output_dir=");
  }
  fs::create_directories(run_dir_, ec);
  LD_CHECK(!ec, run_dir_.string(), ": cannot create the run folder (", ec.message(), ")");
  save_resolved(c_, run_dir_);
  log_ = std::make_unique<MetricsLog>(run_dir_ / kMetricsFile);
}

void Trainer::resume_from(const fs::path& checkpoint) {
  TrainerState saved = read_trainer_state(checkpoint);
  models::load_weights(module(), checkpoint, [&](nn::StateDict s) {
    return lm_ ? lm_->normalize_checkpoint(std::move(s)) : bert_->normalize_checkpoint(std::move(s));
  });
  optimizer_->load(checkpoint / kOptimizerFile);
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
  masking_.seed = state_.seed;
  if (o_.print)
    std::printf("resuming from %s: step %lld, %lld tokens seen\n", checkpoint.string().c_str(),
                (long long)state_.step, (long long)state_.tokens_seen);
}

LossParts Trainer::micro_loss(const data::Batch& batch, uint64_t mask_stream) const {
  if (lm_) return clm_loss(*lm_, batch.inputs, batch.targets);
  return mlm_loss(*bert_, mask_tokens(batch.inputs, masking_, mask_stream));
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
  const double inv_accum = 1.0 / double(t.grad_accum);
  for (int64_t k = 0; k < t.grad_accum; ++k) {
    const data::Batch batch = loader_->next();
    const LossParts parts = micro_loss(batch, mlm() ? state_.mask_stream++ : 0);
    const Tensor loss = t.grad_accum == 1 ? parts.loss : ops::scale(parts.loss, inv_accum);
    scaler_.scaled_loss(loss).backward();
    r.loss += parts.loss.item() * inv_accum;
    r.lm_loss += parts.lm_loss.item() * inv_accum;
    if (parts.aux_loss.defined()) r.aux_loss += parts.aux_loss.item() * inv_accum;
    state_.cursor = batch.cursor;
    state_.tokens_seen += batch.inputs.numel();
  }
  if (!std::isfinite(r.loss) && !scaler_.enabled()) diverged(r.step, "loss", r.loss);
  const std::vector<Tensor>& params = optimizer_->params();
  scaler_.unscale(params);
  r.grad_norm = t.grad_clip > 0 ? clip_grad_norm(params, t.grad_clip) : grad_norm(params);
  if (!std::isfinite(r.grad_norm)) {
    if (!scaler_.enabled()) diverged(r.step, "gradient norm", r.grad_norm);
    scaler_.record_overflow();
  }
  r.skipped = scaler_.step_skipped();
  if (!r.skipped) optimizer_->step();
  scaler_.update();
  state_.step = r.step;
  r.tokens = state_.tokens_seen;
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.tokens_per_s = seconds > 0 ? double(t.batch_size * seq_len_ * t.grad_accum) / seconds : 0.0;
  return r;
}

void Trainer::report_step(const StepReport& r) {
  const double mfu = o_.peak_tflops > 0 ? double(flops_per_token_) * r.tokens_per_s / (o_.peak_tflops * 1e12) : 0.0;
  json line = {{"type", "train"},   {"step", r.step},     {"loss", r.loss},           {"lr", r.lr},
               {"tokens_per_s", r.tokens_per_s},          {"tokens", r.tokens},       {"grad_norm", r.grad_norm},
               {"elapsed_s", std::chrono::duration<double>(Clock::now() - started_).count()}};
  if (lm_ && lm_->hf_config().moe.enabled()) {
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
                    r.step == c_.train.max_steps;
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
                  100.0 * double(flops_per_token_) * shown_rate / (o_.peak_tflops * 1e12));
    extra = buf;
  }
  std::printf("step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s%s | ETA %s\n",
              (long long)r.step, (long long)c_.train.max_steps, r.loss, r.lr, r.grad_norm, shown_rate,
              extra.c_str(), format_duration(per_step * double(c_.train.max_steps - r.step)).c_str());
  std::fflush(stdout);
}

EvalReport Trainer::evaluate() {
  autograd::NoGradGuard no_grad;
  EvalReport r;
  r.step = state_.step;
  double loss_sum = 0;
  eval_loader_->reset();
  // Masked LM evaluation draws its masks from streams of their own, the same at every evaluation.
  uint64_t stream = uint64_t(1) << 63;
  while (std::optional<data::Batch> batch = eval_loader_->next()) {
    const LossParts parts = micro_loss(*batch, stream++);
    loss_sum += parts.lm_loss.item() * double(parts.tokens);
    r.tokens += parts.tokens;
  }
  r.val_loss = r.tokens > 0 ? loss_sum / double(r.tokens) : std::nan("");
  r.val_ppl = std::exp(r.val_loss);
  log_->write({{"type", "eval"}, {"step", r.step}, {"val_loss", r.val_loss}, {"val_ppl", r.val_ppl}, {"tokens", r.tokens}});
  if (std::isfinite(r.val_loss)) state_.best_val_loss = std::min(state_.best_val_loss, r.val_loss);
  if (o_.print)
    std::printf("eval step %lld | val loss %.4f | val ppl %.2f | %lld tokens\n", (long long)r.step, r.val_loss,
                r.val_ppl, (long long)r.tokens);
  if (lm_ && tokenizer_) {
    infer::GenerateOptions g;
    g.max_new_tokens = c_.eval.sample_tokens;
    g.sampling.temperature = 0.0f;  // greedy: the same prompt shows how the model changes
    for (int64_t id : lm_->hf_config().eos_token_ids) g.eos_ids.push_back(int32_t(id));
    if (index_.eos_id >= 0) g.eos_ids.push_back(index_.eos_id);
    for (const std::string& prompt : c_.eval.samples) {
      const std::vector<int32_t> ids = tokenizer_->encode(prompt);
      LD_CHECK(!ids.empty(), "eval.samples: the prompt \"", prompt, "\" encodes to no tokens");
      const std::vector<int32_t> out = infer::generate(*lm_, std::vector<int64_t>(ids.begin(), ids.end()), g);
      const std::string text = tokenizer_->decode(out);
      r.samples.emplace_back(prompt, text);
      log_->write({{"type", "sample"}, {"step", r.step}, {"prompt", prompt}, {"text", text}});
      if (o_.print) std::printf("  sample: %s|%s\n", prompt.c_str(), one_line(text).c_str());
    }
  }
  std::fflush(stdout);
  return r;
}

void Trainer::save(TrainResult& result) {
  state_.loss_scaler = scaler_.state_dict();
  state_.generator_seed = default_generator().seed();
  state_.generator_offset = default_generator().offset();
  result.last_checkpoint = save_checkpoint(run_dir_, {.model = module(),
                                                      .config = with_dataset_special_ids(c_.model.hf, index_),
                                                      .optimizer = *optimizer_,
                                                      .state = state_,
                                                      .tokenizer_from = tokenizer_folder()});
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
                    o_.peak_tflops, (long long)flops_per_token_);
    std::printf("pretraining %s (%lld parameters) on %s: %lld x %lld tokens x %lld micro-batches per step, "
                "%lld steps, %s\n",
                c_.model.hf.model_type.c_str(), (long long)module().parameter_count(), c_.data.path.c_str(),
                (long long)c_.train.batch_size, (long long)seq_len_, (long long)c_.train.grad_accum,
                (long long)max_steps, mfu);
  }
  int64_t saved_at = state_.step;
  while (state_.step < max_steps) {
    const StepReport r = train_step();
    result.losses.push_back(r.loss);
    report_step(r);
    if (o_.on_step) o_.on_step(r);
    if (eval_loader_ && due(c_.eval.every)) {
      EvalReport e = evaluate();
      result.val_losses.push_back(e.val_loss);
      if (o_.on_eval) o_.on_eval(e);
    }
    const bool stop = stop_requested();
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
  if (!result.interrupted) {
    const fs::path final_dir = run_dir_ / "model";
    models::save_pretrained(module(), with_dataset_special_ids(c_.model.hf, index_), final_dir, /*force=*/true, tokenizer_folder());
    if (o_.print) std::printf("model saved to %s\n", final_dir.string().c_str());
  }
  result.step = state_.step;
  return result;
}

}  // namespace

TrainResult pretrain(const RunConfig& config, const TrainOptions& options) {
  Trainer trainer(config, options);
  return trainer.run();
}

}  // namespace ld::train
