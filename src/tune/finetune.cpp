#include "tune/finetune.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>

#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/checkpoint.hpp"
#include "train/pretrain_task.hpp"
#include "train/train_task.hpp"
#include "tune/finetune_classify.hpp"
#include "tune/finetune_continual.hpp"
#include "tune/finetune_mixed.hpp"
#include "tune/finetune_model.hpp"
#include "tune/finetune_multitask.hpp"
#include "tune/finetune_sft.hpp"

namespace ld::tune {

namespace fs = std::filesystem;

namespace {

std::string joined(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

// Those of `keys` set to something other than their default.
std::vector<std::string> set_keys(const train::RunConfig& c, const std::vector<std::string>& keys) {
  std::vector<std::string> found;
  for (const std::string& k : keys)
    if (c.set_away_from_default(k)) found.push_back(k);
  return found;
}

void refuse_set(const train::RunConfig& c, const std::vector<std::string>& keys, const std::string& why) {
  const std::vector<std::string> found = set_keys(c, keys);
  LD_CHECK(found.empty(), "finetune: ", joined(found), ": ", why);
}

// Each method's own section, refused under another method.
void check_method_sections(const train::RunConfig& c) {
  const std::string& method = c.finetune.method;
  for (const auto& [section, owner] : {std::pair<std::string, std::string>{"lora", "lora"},
                                       {"adapter", "adapter"},
                                       {"prompt_tuning", "prompt"}}) {
    const std::vector<std::string> given = set_keys(c, c.given_in(section));
    LD_CHECK(given.empty() || method == owner, "finetune: ", joined(given), ": options of method ", owner,
             ", but finetune.method=", method);
  }
  LD_CHECK(c.prompt_tuning.init != "text" || !c.prompt_tuning.init_text.empty(),
           "prompt_tuning.init=text needs prompt_tuning.init_text");
}


// The task's own keys, and those of other tasks refused.
void check_task_keys(const train::RunConfig& c) {
  const std::string& task = c.finetune.task;
  const std::vector<std::string> multitask = set_keys(c, c.given_in("multitask"));
  LD_CHECK(multitask.empty() || task == "multitask", "finetune: ", joined(multitask),
           ": options of finetune.task=multitask, but finetune.task=", task);
  if (task != "classify") refuse_set(c, {"data.labels"}, "read by finetune.task=classify only");
  if (task == "sft" || task == "classify") {
    refuse_set(c, {"data.path", "eval.samples"},
               "not read by finetune.task=" + task + " (it reads data.train and data.val)");
    LD_CHECK(!c.data.train.empty(), "finetune: data.train: required for finetune.task=", task,
             task == "sft" ? " (Alpaca or chat JSONL)" : " ({\"text\", \"label\"} JSONL)");
  } else if (task == "multitask") {
    refuse_set(c, {"data.path", "eval.samples", "data.train", "data.val", "data.packing"},
               "not read by finetune.task=multitask (it reads multitask.train and multitask.val)");
    multitask_datasets(c);  // the lists' errors, before anything loads
    LD_CHECK(c.finetune.method != "prompt", "finetune.task=multitask: finetune.method=prompt is not supported");
  } else {
    refuse_set(c, {"data.train", "data.val", "data.template", "data.packing"},
               "instruction-data options, meaningless for finetune.task=clm (it reads data.path)");
  }
  if (task == "classify") {
    refuse_set(c, {"data.template", "data.packing"}, "instruction-data options, meaningless for finetune.task=classify");
    LD_CHECK(c.finetune.method == "full" || c.finetune.method == "lora", "finetune.task=classify: finetune.method=",
             c.finetune.method, " is not supported (full or lora: the score head is trained with either)");
  }
}

void check_continual_keys(const train::RunConfig& c) {
  if (!continual_enabled(c)) return;
  const std::string& task = c.finetune.task;
  LD_CHECK(task != "clm", "finetune: ", joined(set_keys(c, c.given_in("continual"))),
           ": continual options need finetune.task sft, classify or multitask, not clm");
  LD_CHECK(c.finetune.method != "prompt", "finetune: continual options are not supported with finetune.method=prompt");
  const bool needs_earlier_data = c.continual.replay_fraction > 0 || c.continual.ewc_lambda > 0;
  LD_CHECK(!needs_earlier_data || !c.continual.replay_from.empty(),
           "finetune: continual.replay_fraction and continual.ewc_lambda need continual.replay_from (the earlier "
           "task's training data)");
  LD_CHECK(task == "classify" || !c.data.packing, "finetune: data.packing cannot be combined with continual options");
  if (!c.continual.replay_from.empty()) earlier_train_file(c);  // a run folder must name its data
}

}  // namespace

fs::path finetune_tokenizer_source(const train::RunConfig& c) {
  return c.data.tokenizer.empty() ? fs::path(c.model.from) : fs::path(c.data.tokenizer);
}

ChatTemplate finetune_chat_template(const train::RunConfig& c) {
  if (c.data.chat_template == "chatml") return ChatTemplate::chatml();
  const fs::path source = finetune_tokenizer_source(c);
  return ChatTemplate::from_tokenizer_config(fs::is_directory(source) ? source : source.parent_path());
}

void check_finetune_config(const train::RunConfig& c) {
  LD_CHECK(!c.model.from.empty(), "finetune: model.from: required (the Hugging Face folder to fine-tune: "
                                  "config.json, weights, tokenizer)");
  // Model keys may repeat the base's values (a resolved.yaml does), not change them.
  const nlohmann::json base = io::to_hf_config_json(io::read_hf_config(c.model.from));
  std::vector<std::string> model_keys;
  for (const auto& [key, value] : c.model.keys.items())
    if (!base.contains(key) || base.at(key) != value) model_keys.push_back("model." + key);
  LD_CHECK(model_keys.empty(), "finetune: ", joined(model_keys), ": the model is ", c.model.from,
           " as saved (its weights fix its config); remove these keys");
  LD_CHECK(c.model.hf.is_causal_lm(), "finetune: ", c.model.from, " is a ", c.model.hf.model_type,
           " model; fine-tuning supports causal LMs (gpt2, llama, mistral, qwen2, mixtral)");
  LD_CHECK(c.finetune.task == "classify" || !is_classifier_folder(c.model.from), "finetune: ", c.model.from,
           " is a sequence classifier; finetune.task=", c.finetune.task, " needs a causal LM");
  refuse_set(c, {"train.mlm_probability", "train.mask_token_id"},
             "pretraining options, meaningless for finetune (the objective follows finetune.task)");
  check_task_keys(c);
  check_continual_keys(c);
  check_method_sections(c);
}

namespace {

std::string percent(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%%", whole > 0 ? 100.0 * double(part) / double(whole) : 0.0);
  return buf;
}

// seq_len by default: the context length less the prompt-tuning positions in front of every row.
train::RunConfig with_room_for_prompt(train::RunConfig c) {
  if (c.finetune.method == "prompt" && !c.was_given("train.seq_len"))
    c.train.seq_len = std::max<int64_t>(2, c.train.seq_len - c.prompt_tuning.num_virtual_tokens);
  return c;
}

class FinetuneTask : public train::TrainTask {
 public:
  FinetuneTask(const train::RunConfig& config, const fs::path& checkpoint, bool print)
      : c_(with_room_for_prompt(config)) {
    if (c_.finetune.task == "sft" || c_.prompt_tuning.init == "text")
      tokenizer_ = tok::load_tokenizer(finetune_tokenizer_source(c_));
    model_ = load_tuned_model(c_, checkpoint, tokenizer_.get());
    place_tuned_model(train::training_device(c_.train));
    model_.lm->train();
    model_.lm->set_checkpointing(train::activation_checkpoint_every(c_.train));
    if (c_.finetune.task == "sft")
      sft_ = std::make_unique<SftData>(c_, *tokenizer_, finetune_chat_template(c_), prefix_tokens(), print);
    else
      clm_ = std::make_unique<train::PretrainTask>(c_, *model_.lm);
  }

  std::string describe() const override {
    const std::string data = sft_ ? c_.data.train : c_.data.path;
    return "fine-tuning " + model_.lm->hf_config().model_type + " from " + c_.model.from + " (" + c_.finetune.method +
           ", " + c_.finetune.task + ") on " + data + ": trainable parameters " +
           std::to_string(model_.trainable_count()) + " of " + std::to_string(model_.total_count()) + " (" +
           percent(model_.trainable_count(), model_.total_count()) + ")";
  }
  nn::Module& model() override { return *model_.lm; }
  std::vector<std::pair<std::string, Tensor>> trainable_parameters() override { return model_.trainable_parameters(); }
  int64_t flops_per_token() const override { return clm_ ? clm_->flops_per_token() : 0; }
  bool splits_aux_loss() const override { return model_.lm->hf_config().moe.enabled(); }

  void set_data_rank(int rank, int ranks) override {
    if (clm_) clm_->set_data_rank(rank, ranks);
    else sft_->set_rank(rank, ranks);
  }
  void start_data(const train::TrainerState& state) override {
    if (sft_)
      sft_->start(state);
    else
      clm_->start_data(state);
  }
  train::LossParts next_loss(train::TrainerState& state) override {
    return sft_ ? sft_->next_loss(*model_.lm, state) : clm_->next_loss(state);
  }
  bool evaluates() const override { return sft_ ? sft_->evaluates() : clm_->evaluates(); }
  train::EvalReport evaluate(int64_t step, ops::ComputePrecision precision, train::MetricsLog& log,
                             bool print) override {
    model_.lm->eval();  // no LoRA dropout while measuring
    train::EvalReport r = sft_ ? sft_->evaluate(*model_.lm, step, precision, log, print)
                               : clm_->evaluate(step, precision, log, print);
    model_.lm->train();
    return r;
  }
  void write_checkpoint_model(const fs::path& dir) const override { model_.save(dir, /*force=*/false); }
  fs::path save_final(const fs::path& run_dir) const override {
    const fs::path dir = run_dir / (model_.method == "full" ? "model" : "adapter");
    model_.save(dir, /*force=*/true);
    return dir;
  }

  int64_t prefix_tokens() const { return model_.method == "prompt" ? model_.prompt.config.num_virtual_tokens : 0; }

 private:
  // The loaded (or resumed) weights, adapters and a prompt-tuning prompt included (CausalLM::to
  // moves the prompt in place, so the PromptEmbedding's handle follows), onto train.device.
  void place_tuned_model(Device device) { model_.lm->to(device); }

  const train::RunConfig c_;  // owned: the data and the clm task refer to it
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  TunedModel model_;
  std::unique_ptr<SftData> sft_;
  std::unique_ptr<train::PretrainTask> clm_;
};

}  // namespace

std::unique_ptr<train::TrainTask> make_finetune_task(const train::RunConfig& config, const fs::path& checkpoint,
                                                     bool print) {
  check_finetune_config(config);
  train::check_precision_supported(config.train.precision);
  if (uses_mixed_sources(config)) {
    LD_CHECK(train::training_device(config.train) == kCPU, "train.device=", config.train.device, ": finetune.task=",
             config.finetune.task, " with these options trains on the CPU only (clm and sft run on a device)");
    return make_mixed_finetune_task(config, checkpoint, print);
  }
  return std::make_unique<FinetuneTask>(config, checkpoint, print);
}

train::TrainResult finetune(const train::RunConfig& config, const train::TrainOptions& options) {
  const fs::path checkpoint = options.resume.empty() ? fs::path() : train::resolve_resume(options.resume);
  const std::unique_ptr<train::TrainTask> task = make_finetune_task(config, checkpoint, options.print);
  return train::run_training(*task, config, options, checkpoint);
}

}  // namespace ld::tune
