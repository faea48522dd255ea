#include "train/pretrain_task.hpp"

#include <cmath>
#include <cstdio>
#include <optional>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "infer/generate.hpp"
#include "models/load_weights.hpp"
#include "train/plan.hpp"

namespace ld::train {

namespace fs = std::filesystem;

namespace {

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

int64_t activation_checkpoint_every(const TrainSection& t) {
  if (t.checkpointing == "none") return 0;
  if (t.checkpointing == "all") return 1;
  LD_CHECK(t.checkpointing == "every_k", "train.checkpointing: \"", t.checkpointing,
           "\" is not one of none, all, every_k");
  return t.checkpoint_every_k;
}

PretrainTask::PretrainTask(const RunConfig& config, const fs::path& checkpoint)
    : c_(config), device_(training_device(config.train)) {
  open_data();
  build_model();
  LD_CHECK(index_.vocab_size <= c_.model.hf.stack.vocab_size, c_.data.path, ": the dataset's vocab_size ",
           index_.vocab_size, " is larger than the model's (", c_.model.hf.stack.vocab_size,
           "); set the model's vocab_size to at least ", index_.vocab_size);
  setup_tokenizer();
  if (bert_) setup_masking();
  flops_per_token_ = training_flops_per_token(c_.model.hf, seq_len_);
  if (!checkpoint.empty())  // read on the host, then moved with the rest
    models::load_weights(model(), checkpoint, [&](nn::StateDict s) {
      return lm_ ? lm_->normalize_checkpoint(std::move(s)) : bert_->normalize_checkpoint(std::move(s));
    });
  place_model();
}

PretrainTask::PretrainTask(const RunConfig& config, models::CausalLM& model)
    : c_(config), borrowed_(&model), device_(training_device(config.train)) {
  open_data();
  LD_CHECK(seq_len_ >= 1 && seq_len_ <= model.config().n_positions, "train.seq_len=", seq_len_,
           " must be in [1, the model's context length ", model.config().n_positions, "]");
  LD_CHECK(index_.vocab_size <= model.config().vocab_size, c_.data.path, ": the dataset's vocab_size ",
           index_.vocab_size, " is larger than the model's (", model.config().vocab_size,
           "): was it prepared with this model's tokenizer?");
  setup_tokenizer();
  flops_per_token_ = training_flops_per_token(model.hf_config(), seq_len_);
  place_model();
}

void PretrainTask::place_model() { model().to(device_); }

void PretrainTask::open_data() {
  LD_CHECK(!c_.data.path.empty(), "data.path: required (a folder prepared by `liandan data prepare`)");
  index_ = data::read_dataset_index(c_.data.path);
  seq_len_ = c_.train.seq_len;
  if (c_.eval.every > 0) open_eval_data(c_.train.batch_size);
}

void PretrainTask::open_eval_data(int64_t batch_size) {
  try {
    eval_loader_ = std::make_unique<data::EvalLoader>(
        c_.data.path, "val",
        data::EvalOptions{.batch_size = batch_size, .seq_len = seq_len_, .max_batches = c_.eval.batches,
                          .rank = 0, .world_size = 1});
  } catch (const Error& e) {
    LD_FAIL(e.what(), " (evaluation reads the val split; set eval.every=0 to train without it)");
  }
}

// Rank 0 evaluates alone, with the job's global batch, so the held-out windows scored are the ones
// a one-process run with that batch scores.
void PretrainTask::set_data_rank(int rank, int ranks) {
  rank_ = rank, ranks_ = ranks;
  if (eval_loader_) open_eval_data(c_.train.batch_size * ranks);
}

void PretrainTask::build_model() {
  const io::HfModelConfig hf = with_dataset_special_ids(c_.model.hf, index_);
  const std::string& objective = c_.train.objective;
  LD_CHECK(seq_len_ >= 1 && seq_len_ <= hf.stack.n_positions, "train.seq_len=", seq_len_,
           " must be in [1, the model's context length ", hf.stack.n_positions, "]");
  Generator gen(uint64_t(c_.train.seed));
  if (hf.is_causal_lm()) {
    LD_CHECK(objective == "clm" || objective == "auto", "train.objective=", objective, ": a ", hf.model_type,
             " model is a causal LM; use clm");
    lm_ = models::make_causal_lm(hf, gen);
    lm_->set_checkpointing(activation_checkpoint_every(c_.train));
    return;
  }
  LD_CHECK(objective == "mlm" || objective == "auto", "train.objective=", objective,
           ": a bert model is trained as a masked LM; use mlm");
  LD_CHECK(hf.architecture.empty() || hf.architecture == "BertForMaskedLM", "model: architecture ",
           hf.architecture, " cannot be pretrained; pretraining builds BertForMaskedLM");
  bert_ = std::make_unique<models::BertForMaskedLM>(hf, gen);
  bert_->bert->encoder->checkpoint_every = activation_checkpoint_every(c_.train);
}

void PretrainTask::setup_tokenizer() {
  tokenizer_path_ = tokenizer_path(c_, index_);
  const bool samples = causal() && c_.eval.every > 0 && !c_.eval.samples.empty();
  const bool mask_id = bert_ && c_.train.mask_token_id < 0;  // the mask id comes from the tokenizer
  if (!samples && !mask_id) return;
  if (tokenizer_path_.empty()) {
    LD_CHECK(!samples, "eval.samples: continuing prompts needs the tokenizer; set data.tokenizer (the dataset's, \"",
             index_.tokenizer, "\", is not a file here)");
    return;  // masked LM: the mask id must then come from elsewhere (setup_masking says so)
  }
  tokenizer_ = tok::load_tokenizer(tokenizer_path_);
}

void PretrainTask::setup_masking() {
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

std::string PretrainTask::describe() const {
  const std::string type = causal() ? causal()->hf_config().model_type : c_.model.hf.model_type;
  return "pretraining " + type + " (" + std::to_string(module().parameter_count()) +
         " parameters) on " + c_.data.path;
}

nn::Module& PretrainTask::model() { return const_cast<nn::Module&>(module()); }

const nn::Module& PretrainTask::module() const {
  if (borrowed_) return *borrowed_;
  return lm_ ? static_cast<const nn::Module&>(*lm_) : static_cast<const nn::Module&>(*bert_);
}

bool PretrainTask::splits_aux_loss() const { return causal() && causal()->hf_config().moe.enabled(); }

void PretrainTask::start_data(const TrainerState& state) {
  masking_.seed = state.seed;
  loader_ = std::make_unique<data::DataLoader>(
      c_.data.path, "train",
      data::LoaderOptions{.batch_size = c_.train.batch_size, .seq_len = seq_len_, .seed = state.seed, .shuffle = true,
                          .rank = rank_, .world_size = ranks_, .prefetch = 2},
      state.cursor);
}

// The loader's batches are host tensors; they go where the model is (masking happens on the host).
LossParts PretrainTask::micro_loss(const data::Batch& batch, uint64_t mask_stream) const {
  if (causal()) return clm_loss(*causal(), batch.inputs.to(device_), batch.targets.to(device_));
  const MaskedBatch masked = mask_tokens(batch.inputs, masking_, mask_stream, rank_ * batch.inputs.numel());
  return mlm_loss(*bert_, {masked.inputs.to(device_), masked.labels.to(device_)});
}

std::vector<std::pair<std::string, Tensor>> PretrainTask::trainable_parameters() {
  return split_ ? split_->named_parameters() : model().named_parameters();
}

void PretrainTask::set_model_parallel(dist::ProcessGrid& grid) {
  LD_CHECK(causal() && !borrowed_, describe(), ": tensor and pipeline parallel (dist.tp, dist.pp) split GPT-2 ",
           "pretraining; data parallel trains the others");
  LD_CHECK(device_ == kCPU, "dist.tp and dist.pp run on the CPU only, not with train.device=", c_.train.device);
  split_ = std::make_unique<dist::Gpt2ModelParallel>(*causal(), grid, c_.dist.schedule);
}

bool PretrainTask::counts_in_grad_norm(const std::string& name) const {
  return !split_ || split_->counts_in_grad_norm(name);
}

std::optional<std::vector<LossParts>> PretrainTask::run_step_micro_batches(TrainerState& state, int64_t count) {
  if (!split_ || !split_->pipelined()) return std::nullopt;
  std::vector<dist::MicroBatch> micro_batches;
  for (int64_t k = 0; k < count; ++k) {
    const data::Batch batch = loader_->next();
    micro_batches.push_back({batch.inputs, batch.targets});
    state.cursor = batch.cursor;
    state.tokens_seen += batch.inputs.numel();
  }
  std::vector<LossParts> out;
  for (double loss : split_->pipeline_step(micro_batches)) {
    const Tensor value = scalar_tensor(loss);
    out.push_back({.loss = value, .lm_loss = value, .aux_loss = Tensor(), .tokens = micro_batches[0].targets.numel()});
  }
  return out;
}

nn::StateDict PretrainTask::gather_like_parameters(const NamedTensors& parts) {
  return split_ ? split_->gather_like(parts) : TrainTask::gather_like_parameters(parts);
}

NamedTensors PretrainTask::shard_like_parameters(const nn::StateDict& full) {
  return split_ ? split_->shard_like(full) : TrainTask::shard_like_parameters(full);
}

void PretrainTask::gather_model() {
  if (!split_) return;
  const nn::StateDict full = split_->gather_state_dict();
  if (!full.empty()) model().load_state_dict(full);
}

LossParts PretrainTask::next_loss(TrainerState& state) {
  const data::Batch batch = loader_->next();
  if (split_) {  // tensor parallel (a pipeline runs whole steps)
    const Tensor loss = split_->loss(batch.inputs, batch.targets);
    state.cursor = batch.cursor;
    state.tokens_seen += batch.inputs.numel();
    return {.loss = loss, .lm_loss = loss, .aux_loss = Tensor(), .tokens = batch.targets.numel()};
  }
  const LossParts parts = micro_loss(batch, bert_ ? state.mask_stream++ : 0);
  state.cursor = batch.cursor;
  state.tokens_seen += batch.inputs.numel();
  return parts;
}

EvalReport PretrainTask::evaluate(int64_t step, ops::ComputePrecision precision, MetricsLog& log, bool print) {
  autograd::NoGradGuard no_grad;
  EvalReport r;
  r.step = step;
  double loss_sum = 0;
  eval_loader_->reset();
  // Masked LM evaluation draws its masks from streams of their own, the same at every evaluation.
  uint64_t stream = uint64_t(1) << 63;
  while (std::optional<data::Batch> batch = eval_loader_->next()) {
    ops::AutocastScope autocast(precision);  // evaluated as trained
    const LossParts parts = micro_loss(*batch, stream++);
    loss_sum += parts.lm_loss.item() * double(parts.tokens);
    r.tokens += parts.tokens;
  }
  r.val_loss = r.tokens > 0 ? loss_sum / double(r.tokens) : std::nan("");
  r.val_ppl = std::exp(r.val_loss);
  log.write(
      {{"type", "eval"}, {"step", r.step}, {"val_loss", r.val_loss}, {"val_ppl", r.val_ppl}, {"tokens", r.tokens}});
  if (print)
    std::printf("eval step %lld | val loss %.4f | val ppl %.2f | %lld tokens\n", (long long)r.step, r.val_loss,
                r.val_ppl, (long long)r.tokens);
  if (causal() && tokenizer_) {
    infer::GenerateOptions g;
    g.max_new_tokens = c_.eval.sample_tokens;
    g.sampling.temperature = 0.0f;  // greedy: the same prompt shows how the model changes
    for (int64_t id : causal()->hf_config().eos_token_ids) g.eos_ids.push_back(int32_t(id));
    if (index_.eos_id >= 0) g.eos_ids.push_back(index_.eos_id);
    for (const std::string& prompt : c_.eval.samples) {
      const std::vector<int32_t> ids = tokenizer_->encode(prompt);
      LD_CHECK(!ids.empty(), "eval.samples: the prompt \"", prompt, "\" encodes to no tokens");
      const std::vector<int32_t> out = infer::generate(*causal(), std::vector<int64_t>(ids.begin(), ids.end()), g);
      const std::string text = tokenizer_->decode(out);
      r.samples.emplace_back(prompt, text);
      log.write({{"type", "sample"}, {"step", r.step}, {"prompt", prompt}, {"text", text}});
      if (print) std::printf("  sample: %s|%s\n", prompt.c_str(), one_line(text).c_str());
    }
  }
  std::fflush(stdout);
  return r;
}

io::HfModelConfig PretrainTask::saved_config() const { return with_dataset_special_ids(c_.model.hf, index_); }

fs::path PretrainTask::tokenizer_folder() const {
  if (tokenizer_path_.empty()) return {};
  return fs::is_directory(tokenizer_path_) ? tokenizer_path_ : tokenizer_path_.parent_path();
}

void PretrainTask::write_checkpoint_model(const fs::path& dir) const {
  LD_ASSERT(!borrowed_, "a borrowed model is saved by its owner");
  models::save_pretrained(module(), saved_config(), dir, /*force=*/false,
                          tokenizer_folder());
}

fs::path PretrainTask::save_final(const fs::path& run_dir) const {
  LD_ASSERT(!borrowed_, "a borrowed model is saved by its owner");
  const fs::path final_dir = run_dir / "model";
  models::save_pretrained(module(), saved_config(), final_dir, /*force=*/true,
                          tokenizer_folder());
  return final_dir;
}

}  // namespace ld::train
