#include "tune/finetune_sources.hpp"

#include <utility>

#include "core/error.hpp"
#include "ops/ops.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tune/classify_data.hpp"

namespace ld::tune {

namespace {

class SftSource : public Source {
 public:
  SftSource(const train::RunConfig& config, const std::string& train_file, const std::string& val_file,
            const tok::Tokenizer& tokenizer, const ChatTemplate& chat_template, const models::CausalLM& model,
            bool print)
      : config_(with_files(config, train_file, val_file)),
        data_(config_, tokenizer, chat_template, /*prefix_tokens=*/0, print),
        model_(model) {}

  int64_t train_examples() const override { return data_.train_examples(); }
  void start(const SftCursor& cursor, uint64_t seed) override {
    train::TrainerState state;
    state.cursor = {.epoch = cursor.epoch, .position = cursor.position};
    state.seed = seed;
    data_.start(state);
  }
  train::LossParts next_loss(int64_t& tokens) override {
    train::TrainerState state;
    train::LossParts parts = data_.next_loss(model_, state);
    tokens += state.tokens_seen;
    return parts;
  }
  bool has_val() const override { return !config_.data.val.empty(); }
  nlohmann::ordered_json evaluate(int64_t step, ops::ComputePrecision precision) const override {
    // SftData logs its own line; the run logs these numbers under the dataset's name instead.
    train::MetricsLog discard("/dev/null");
    const train::EvalReport r = data_.evaluate(model_, step, precision, discard, /*print=*/false);
    return {{"exact_match", r.exact_match}, {"val_loss", r.val_loss}, {"val_ppl", r.val_ppl}};
  }
  std::string headline() const override { return "exact_match"; }

 private:
  static train::RunConfig with_files(train::RunConfig c, const std::string& train_file, const std::string& val_file) {
    c.data.train = train_file;
    c.data.val = val_file;
    c.data.packing = false;  // the cursor rule of unpacked batches (see the header)
    return c;
  }

  const train::RunConfig config_;  // SftData refers to it
  SftData data_;
  const models::CausalLM& model_;
};

class ClassifySource : public Source {
 public:
  ClassifySource(const train::RunConfig& config, const std::string& train_file, const std::string& val_file,
                 const std::vector<std::string>& label_set, const tok::Tokenizer& tokenizer,
                 const SequenceClassifier& model)
      : batch_size_(config.train.batch_size), label_set_(label_set), model_(model) {
    const int64_t seq_len = config.train.seq_len;
    train_ = tokenize_classify_examples(read_classify_jsonl(train_file, label_set).examples, tokenizer, seq_len);
    if (!val_file.empty())
      val_ = tokenize_classify_examples(read_classify_jsonl(val_file, label_set).examples, tokenizer, seq_len);
  }

  int64_t train_examples() const override { return int64_t(train_.size()); }
  void start(const SftCursor& cursor, uint64_t seed) override {
    loader_ = std::make_unique<ClassifyLoader>(
        train_, ClassifyLoaderOptions{.batch_size = batch_size_, .shuffle = true, .seed = seed, .pad_id = 0}, cursor);
  }
  train::LossParts next_loss(int64_t& tokens) override {
    const ClassifyBatch batch = loader_->next();
    const ClassifierOutput out = model_.forward(batch.input_ids, batch.attention_mask);
    train::LossParts parts;
    parts.lm_loss = model_.loss(out.logits, batch.labels);
    parts.aux_loss = out.aux_loss;
    parts.loss = out.aux_loss.defined() ? ops::add(parts.lm_loss, out.aux_loss) : parts.lm_loss;
    parts.tokens = batch.input_ids.numel();
    tokens += parts.tokens;
    return parts;
  }
  bool has_val() const override { return !val_.empty(); }
  nlohmann::ordered_json evaluate(int64_t, ops::ComputePrecision precision) const override {
    ops::AutocastScope autocast(precision);  // evaluated as trained
    const ClassifyMetrics m = evaluate_classification(val_, label_set_, logits_fn(model_), batch_size_, 0);
    return {{"accuracy", m.accuracy}, {"macro_f1", m.macro_f1}, {"examples", m.examples}};
  }
  std::string headline() const override { return "accuracy"; }

 private:
  int64_t batch_size_;
  std::vector<std::string> label_set_;
  const SequenceClassifier& model_;
  std::vector<TokenizedExample> train_, val_;
  std::unique_ptr<ClassifyLoader> loader_;
};

}  // namespace

std::unique_ptr<Source> make_sft_source(const train::RunConfig& config, const std::string& train_file,
                                        const std::string& val_file, const tok::Tokenizer& tokenizer,
                                        const ChatTemplate& chat_template, const models::CausalLM& model,
                                        bool print) {
  return std::make_unique<SftSource>(config, train_file, val_file, tokenizer, chat_template, model, print);
}

std::unique_ptr<Source> make_classify_source(const train::RunConfig& config, const std::string& train_file,
                                             const std::string& val_file, const std::vector<std::string>& label_set,
                                             const tok::Tokenizer& tokenizer, const SequenceClassifier& model) {
  return std::make_unique<ClassifySource>(config, train_file, val_file, label_set, tokenizer, model);
}

SftCursor cursor_after(int64_t batches, int64_t examples, int64_t batch_size) {
  LD_CHECK(examples > 0 && batch_size > 0, "cursor_after: no examples or batch size 0");
  const int64_t per_epoch = (examples + batch_size - 1) / batch_size;
  return {.epoch = batches / per_epoch, .position = (batches % per_epoch) * batch_size};
}

MixedSources::MixedSources(std::vector<Source*> sources, std::vector<double> probabilities, int64_t batch_size)
    : sources_(std::move(sources)), probabilities_(std::move(probabilities)), batch_size_(batch_size) {
  LD_CHECK(sources_.size() == probabilities_.size(), "MixedSources: ", sources_.size(), " sources but ",
           probabilities_.size(), " probabilities");
}

void MixedSources::start(const train::TrainerState& state) {
  LD_CHECK(state.cursor.epoch == 0, "the data cursor of a mixed fine-tuning run has epoch 0, not ",
           state.cursor.epoch, " (a checkpoint of another kind of run?)");
  const int64_t drawn = state.cursor.position;
  std::vector<int64_t> counts(sources_.size(), 0);
  TaskMixer replay(probabilities_, state.seed);
  for (int64_t k = 0; k < drawn; ++k) ++counts[replay.next()];
  for (size_t i = 0; i < sources_.size(); ++i)
    sources_[i]->start(cursor_after(counts[i], sources_[i]->train_examples(), batch_size_), state.seed);
  mixer_ = std::make_unique<TaskMixer>(probabilities_, state.seed, drawn);
}

train::LossParts MixedSources::next_loss(train::TrainerState& state) {
  const size_t i = mixer_->next();
  int64_t tokens = 0;
  train::LossParts parts = sources_[i]->next_loss(tokens);
  state.cursor = {.epoch = 0, .position = mixer_->draws()};
  state.tokens_seen += tokens;
  return parts;
}

}  // namespace ld::tune
