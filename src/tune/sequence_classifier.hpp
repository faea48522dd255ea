#pragma once
// Sequence classification with a causal LM, as transformers' GPT2ForSequenceClassification and
// LlamaForSequenceClassification (Mistral, Qwen2, Mixtral alike) do it: a `score` Linear(C,
// num_labels, no bias) reads the final hidden state (after the last norm) of each row's last token.
// The LM's vocabulary projection is never computed (LmInputs::hidden_only).
//
// Which token: the last position whose attention_mask is 1. With right padding that is the last real
// token; with left padding it is the last position; without a mask it is the last position.
// transformers finds the same position from pad_token_id in input_ids; the mask is used here so that
// a pad id equal to EOS (common for GPT-2) cannot move it.
//
// Parameter names are transformers' (transformer.* for GPT-2, model.* for the LLaMA family, then
// score.weight; no lm_head), so save_sequence_classifier writes a folder that transformers loads as
// *ForSequenceClassification. For BERT use models::BertForSequenceClassification ([CLS] pooler).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "tune/classify_batches.hpp"

namespace ld {
class Generator;
}
namespace ld::models {
class BertForSequenceClassification;
}

namespace ld::tune {

// Per row, the position the label is read from (see above). attention_mask: undefined, or
// i32/i64/u8 [batch, length]. A row without any real token is an error naming the row.
std::vector<int64_t> pooled_positions(const Tensor& attention_mask, int64_t batch, int64_t length);

// transformers' class for a model type: GPT2ForSequenceClassification, LlamaForSequenceClassification,
// MistralForSequenceClassification, Qwen2ForSequenceClassification, MixtralForSequenceClassification.
std::string sequence_classification_architecture(const std::string& model_type);

struct ClassifierOutput {
  Tensor logits;    // f32 [B, num_labels]
  Tensor aux_loss;  // MoE models: the routers' auxiliary loss (add it to the loss to train routers); else undefined
};

class SequenceClassifier : public nn::Module {
 public:
  // Takes `lm`'s body (its modules other than lm_head, shared, under their own names) and adds a
  // score head initialised N(0, 0.02) from gen. label_names: one per class (empty: LABEL_0, ...).
  SequenceClassifier(std::unique_ptr<models::CausalLM> lm, int64_t num_labels, Generator& gen,
                     std::vector<std::string> label_names = {});

  // ids [B, T]; attention_mask undefined or [B, T] (padding on either side).
  ClassifierOutput forward(const Tensor& ids, const Tensor& attention_mask = Tensor()) const;
  // Mean cross-entropy of logits [B, num_labels] against labels i64 [B]; a label outside
  // [0, num_labels) is an error naming the row.
  Tensor loss(const Tensor& logits, const Tensor& labels) const;
  // The argmax class of each row of logits [B, num_labels].
  static std::vector<int64_t> predictions(const Tensor& logits);

  // The data's label set must be this head's: same count (and the same names when this head has
  // names other than LABEL_i). Errors say which.
  void check_label_set(const std::vector<std::string>& label_set) const;

  int64_t num_labels() const { return int64_t(label_names_.size()); }
  const std::vector<std::string>& label_names() const { return label_names_; }
  models::CausalLM& lm() { return *lm_; }
  const models::CausalLM& lm() const { return *lm_; }
  // The LM's config with the classification architecture and num_labels.
  io::HfModelConfig hf_config() const;

  std::shared_ptr<nn::Linear> score;  // [num_labels, C], no bias

 private:
  std::unique_ptr<models::CausalLM> lm_;
  std::vector<std::string> label_names_;
};

// Writes a transformers folder (see save_pretrained): config.json with architectures
// [*ForSequenceClassification], num_labels, id2label and label2id; model.safetensors with the body and
// score.weight.
void save_sequence_classifier(const SequenceClassifier& model, const std::filesystem::path& dir, bool force = false,
                              const std::filesystem::path& tokenizer_from = {});
// Reads a folder save_sequence_classifier (or transformers) wrote: num_labels and label names from
// config.json, the weights strictly. Errors name the folder.
std::unique_ptr<SequenceClassifier> load_sequence_classifier(const std::filesystem::path& dir);

// What evaluate_classification runs, for the causal classifier and for BERT.
LogitsFn logits_fn(const SequenceClassifier& model);
LogitsFn logits_fn(const models::BertForSequenceClassification& model);

}  // namespace ld::tune
