#include "tune/finetune_mixed.hpp"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.hpp"
#include "ops/ops.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/pretrain_task.hpp"
#include "tune/classify_data.hpp"
#include "tune/finetune.hpp"
#include "tune/finetune_classify.hpp"
#include "tune/finetune_continual.hpp"
#include "tune/finetune_model.hpp"
#include "tune/finetune_multitask.hpp"
#include "tune/finetune_sources.hpp"

namespace ld::tune {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

std::string percent(int64_t part, int64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g%%", whole > 0 ? 100.0 * double(part) / double(whole) : 0.0);
  return buf;
}

// "accuracy 97.5%, macro_f1 0.9744": fractions of examples as percentages, the rest as numbers.
std::string shown(const ordered_json& metrics) {
  std::string out;
  for (const auto& [key, value] : metrics.items()) {
    if (!value.is_number()) continue;
    const double v = value.get<double>();
    const bool fraction = key.find("accuracy") != std::string::npos || key.find("exact_match") != std::string::npos;
    char buf[96];
    if (key == "forgetting")  // a drop of a percentage
      std::snprintf(buf, sizeof buf, "forgetting %.1f points", 100.0 * v);
    else
      std::snprintf(buf, sizeof buf, fraction ? "%s %.1f%%" : "%s %.4g", key.c_str(), fraction ? 100.0 * v : v);
    out += (out.empty() ? "" : ", ") + std::string(buf);
  }
  return out;
}

double number_or_nan(const ordered_json& j, const std::string& key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
}

struct NamedSource {
  std::string name;  // "" for the single dataset of classify and sft
  std::unique_ptr<Source> source;
};

class MixedTask : public train::TrainTask {
 public:
  MixedTask(const train::RunConfig& config, const fs::path& checkpoint, bool print) : c_(config) {
    tokenizer_ = tok::load_tokenizer(finetune_tokenizer_source(c_));
    if (c_.finetune.task == "classify")
      build_classify(checkpoint);
    else
      build_sft(checkpoint, print);
    trained_ = trainable_parameters();
    if (continual_enabled(c_)) build_continual(checkpoint, print);
    std::vector<Source*> mixed;
    for (const NamedSource& s : sources_) mixed.push_back(s.source.get());
    std::vector<double> p = base_probabilities();
    const double replay = c_.continual.replay_fraction;
    if (replay > 0) {
      for (double& x : p) x *= 1.0 - replay;
      p.push_back(replay);
      mixed.push_back(earlier_.get());
    }
    mixed_ = std::make_unique<MixedSources>(std::move(mixed), std::move(p), c_.train.batch_size);
  }

  std::string describe() const override {
    const int64_t trainable = clf_ ? clf_->trainable_count() : lm_.trainable_count();
    const int64_t total = clf_ ? clf_->total_count() : lm_.total_count();
    std::string data;
    for (const NamedSource& s : sources_) data += (data.empty() ? "" : " + ") + (s.name.empty() ? c_.data.train : s.name);
    std::string text = "fine-tuning " + lm().hf_config().model_type + " from " + c_.model.from + " (" +
                       c_.finetune.method + ", " + c_.finetune.task + ") on " + data + ": trainable parameters " +
                       std::to_string(trainable) + " of " + std::to_string(total) + " (" + percent(trainable, total) +
                       ")";
    if (c_.continual.replay_fraction > 0)
      text += "; replaying " + std::to_string(c_.continual.replay_fraction) + " of " + earlier_train_file(c_);
    if (c_.continual.ewc_lambda > 0) text += "; EWC lambda " + std::to_string(c_.continual.ewc_lambda);
    return text;
  }
  nn::Module& model() override { return clf_ ? static_cast<nn::Module&>(*clf_->classifier) : *lm_.lm; }
  std::vector<std::pair<std::string, Tensor>> trainable_parameters() override {
    return clf_ ? clf_->trainable_parameters() : lm_.trainable_parameters();
  }
  bool splits_aux_loss() const override { return lm().hf_config().moe.enabled(); }

  void start_data(const train::TrainerState& state) override { mixed_->start(state); }
  train::LossParts next_loss(train::TrainerState& state) override {
    train::LossParts parts = mixed_->next_loss(state);
    if (continual_ && continual_->uses_ewc()) parts.loss = ops::add(parts.loss, continual_->penalty(trained_));
    return parts;
  }
  bool evaluates() const override {
    if (c_.eval.every <= 0) return false;
    for (const NamedSource& s : sources_)
      if (s.source->has_val()) return true;
    return earlier_ && earlier_->has_val();
  }
  train::EvalReport evaluate(int64_t step, ops::ComputePrecision precision, train::MetricsLog& log,
                             bool print) override;

  void write_checkpoint_model(const fs::path& dir) const override {
    save_model(dir, /*force=*/false);
    if (continual_) continual_->save(dir);
  }
  fs::path save_final(const fs::path& run_dir) const override {
    const fs::path dir = run_dir / (c_.finetune.method == "full" ? "model" : "adapter");
    save_model(dir, /*force=*/true);
    if (continual_) continual_->save(run_dir);
    return dir;
  }

 private:
  const models::CausalLM& lm() const { return clf_ ? clf_->classifier->lm() : *lm_.lm; }
  void save_model(const fs::path& dir, bool force) const {
    if (clf_)
      clf_->save(dir, force);
    else
      lm_.save(dir, force);
  }

  void build_classify(const fs::path& checkpoint) {
    labels_ = c_.data.labels.empty() ? label_set_from_file(c_.data.train) : c_.data.labels;
    clf_ = load_classifier_model(c_, checkpoint, labels_);
    clf_->classifier->train();
    clf_->classifier->lm().set_checkpointing(train::activation_checkpoint_every(c_.train));
    sources_.push_back({"", make_classify_source(c_, c_.data.train, c_.data.val, labels_, *tokenizer_,
                                                 *clf_->classifier)});
  }

  void build_sft(const fs::path& checkpoint, bool print) {
    lm_ = load_tuned_model(c_, checkpoint, tokenizer_.get());
    lm_.lm->train();
    lm_.lm->set_checkpointing(train::activation_checkpoint_every(c_.train));
    chat_ = finetune_chat_template(c_);
    if (c_.finetune.task == "multitask") {
      datasets_ = multitask_datasets(c_);
      for (const MultitaskDataset& d : datasets_)
        sources_.push_back({d.name, make_sft_source(c_, d.train, d.val, *tokenizer_, *chat_, *lm_.lm, print)});
    } else {
      sources_.push_back({"", make_sft_source(c_, c_.data.train, c_.data.val, *tokenizer_, *chat_, *lm_.lm, print)});
    }
  }

  void build_continual(const fs::path& checkpoint, bool print) {
    const std::string earlier_val = c_.continual.earlier_val;
    std::string earlier_train = earlier_train_file(c_);
    if (earlier_train.empty()) earlier_train = earlier_val;  // evaluated only
    LD_CHECK(!earlier_train.empty(), "continual: set continual.replay_from (the earlier task's training data) "
                                     "or continual.earlier_val");
    if (clf_)
      earlier_ = make_classify_source(c_, earlier_train, earlier_val, labels_, *tokenizer_, *clf_->classifier);
    else
      earlier_ = make_sft_source(c_, earlier_train, earlier_val, *tokenizer_, *chat_, *lm_.lm, print);
    continual_ = std::make_unique<Continual>(c_, *earlier_, model(), trained_, checkpoint, print);
  }

  std::vector<double> base_probabilities() const {
    if (c_.finetune.task != "multitask") return {1.0};
    std::vector<int64_t> sizes;
    for (const NamedSource& s : sources_) sizes.push_back(s.source->train_examples());
    return multitask_probabilities(c_, datasets_, sizes);
  }

  const train::RunConfig c_;  // owned: the sources refer to it
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_;
  std::optional<ClassifierModel> clf_;  // task classify
  TunedModel lm_;                       // otherwise
  std::vector<std::string> labels_;
  std::vector<MultitaskDataset> datasets_;
  std::vector<NamedSource> sources_;
  std::unique_ptr<Source> earlier_;
  std::unique_ptr<Continual> continual_;
  std::unique_ptr<MixedSources> mixed_;
  NamedParams trained_;
};

train::EvalReport MixedTask::evaluate(int64_t step, ops::ComputePrecision precision, train::MetricsLog& log,
                                      bool print) {
  model().eval();  // no dropout while measuring
  ordered_json line = {{"type", "eval"}, {"step", step}};
  std::string text;
  double loss_sum = 0;
  int64_t losses = 0;
  train::EvalReport r;
  r.step = step;
  for (const NamedSource& s : sources_) {
    if (!s.source->has_val()) continue;
    const ordered_json m = s.source->evaluate(step, precision);
    const std::string prefix = s.name.empty() ? "" : s.name + "/";
    for (const auto& [key, value] : m.items()) line[prefix + key] = value;
    text += " | " + (s.name.empty() ? "" : s.name + ": ") + shown(m);
    const double loss = number_or_nan(m, "val_loss");
    if (std::isfinite(loss)) loss_sum += loss, ++losses;
    if (s.name.empty()) r.exact_match = number_or_nan(m, "exact_match");
  }
  r.val_loss = losses > 0 ? loss_sum / double(losses) : std::nan("");
  r.val_ppl = std::exp(r.val_loss);
  if (losses > 1) line["val_loss"] = r.val_loss;  // the datasets' mean, for plots and best_val_loss
  if (continual_) {
    const ordered_json m = continual_->evaluate(step, precision);
    for (const auto& [key, value] : m.items()) line[key] = value;
    if (!m.empty()) text += " | " + shown(m);
  }
  log.write(line);
  if (print) std::printf("eval step %lld%s\n", (long long)step, text.c_str());
  std::fflush(stdout);
  model().train();
  return r;
}

}  // namespace

bool uses_mixed_sources(const train::RunConfig& c) {
  return c.finetune.task == "classify" || c.finetune.task == "multitask" || continual_enabled(c);
}

std::unique_ptr<train::TrainTask> make_mixed_finetune_task(const train::RunConfig& config, const fs::path& checkpoint,
                                                           bool print) {
  return std::make_unique<MixedTask>(config, checkpoint, print);
}

}  // namespace ld::tune
