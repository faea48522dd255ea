#include "tune/sequence_classifier.hpp"

#include <fstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/safetensors.hpp"
#include "models/bert.hpp"
#include "models/load_weights.hpp"
#include "ops/ops.hpp"

namespace ld::tune {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kScorePrefix = "score.";

std::vector<std::string> default_label_names(int64_t n) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < n; ++i) names.push_back("LABEL_" + std::to_string(i));
  return names;
}

// num_labels and the label names of a classification config.json: id2label when present (keys
// "0".."n-1"), else num_labels, else transformers' default of 2.
std::vector<std::string> read_label_names(const fs::path& config_file) {
  std::ifstream in(config_file);
  LD_CHECK(in.good(), config_file.string(), ": cannot read");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    LD_FAIL(config_file.string(), ": not valid JSON (", e.what(), ")");
  }
  const auto id2label = j.find("id2label");
  if (id2label == j.end()) {
    const int64_t n = j.value("num_labels", int64_t(2));
    LD_CHECK(n >= 1, config_file.string(), ": num_labels=", n, " must be positive");
    return default_label_names(n);
  }
  LD_CHECK(id2label->is_object() && !id2label->empty(), config_file.string(), ": id2label must be a non-empty object");
  std::vector<std::string> names(id2label->size());
  for (size_t i = 0; i < names.size(); ++i) {
    const auto it = id2label->find(std::to_string(i));
    LD_CHECK(it != id2label->end() && it->is_string(), config_file.string(), ": id2label has no string for id ", i,
             " (ids must be 0..", names.size() - 1, ")");
    names[i] = it->get<std::string>();
  }
  const int64_t n = j.value("num_labels", int64_t(names.size()));
  LD_CHECK(n == int64_t(names.size()), config_file.string(), ": num_labels=", n, " but id2label has ", names.size(),
           " labels");
  return names;
}

json with_labels(json j, const std::vector<std::string>& names) {
  json id2label = json::object(), label2id = json::object();
  for (size_t i = 0; i < names.size(); ++i) {
    id2label[std::to_string(i)] = names[i];
    label2id[names[i]] = i;
  }
  j["num_labels"] = names.size();
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  return j;
}

}  // namespace

std::vector<int64_t> pooled_positions(const Tensor& attention_mask, int64_t batch, int64_t length) {
  LD_CHECK(length >= 1, "sequence classification: no tokens to classify from (length 0)");
  if (!attention_mask.defined()) return std::vector<int64_t>(size_t(batch), length - 1);
  LD_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == batch && attention_mask.size(1) == length,
           "sequence classification: attention_mask ", shape_str(attention_mask.shape()), " does not match ids [",
           batch, ", ", length, "]");
  const std::vector<int64_t> mask = attention_mask.to_vector<int64_t>();
  std::vector<int64_t> positions(size_t(batch), -1);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < length; ++t)
      if (mask[size_t(b * length + t)] != 0) positions[size_t(b)] = t;
  for (int64_t b = 0; b < batch; ++b)
    LD_CHECK(positions[size_t(b)] >= 0, "sequence classification: row ", b,
             " has no real token (its attention_mask is all 0)");
  return positions;
}

std::string sequence_classification_architecture(const std::string& model_type) {
  if (model_type == "gpt2") return "GPT2ForSequenceClassification";
  if (model_type == "llama") return "LlamaForSequenceClassification";
  if (model_type == "mistral") return "MistralForSequenceClassification";
  if (model_type == "qwen2") return "Qwen2ForSequenceClassification";
  if (model_type == "mixtral") return "MixtralForSequenceClassification";
  LD_FAIL("sequence classification: model_type \"", model_type,
          "\" is not a causal LM (supported: gpt2, llama, mistral, qwen2, mixtral; for bert use "
          "BertForSequenceClassification)");
}

SequenceClassifier::SequenceClassifier(std::unique_ptr<models::CausalLM> lm, int64_t num_labels, Generator& gen,
                                       std::vector<std::string> label_names)
    : lm_(std::move(lm)), label_names_(std::move(label_names)) {
  LD_CHECK(lm_ != nullptr, "SequenceClassifier: no language model");
  LD_CHECK(num_labels >= 1, "SequenceClassifier: num_labels=", num_labels, " must be positive");
  sequence_classification_architecture(lm_->hf_config().model_type);  // refuses what transformers has no class for
  if (label_names_.empty()) label_names_ = default_label_names(num_labels);
  LD_CHECK(int64_t(label_names_.size()) == num_labels, "SequenceClassifier: num_labels=", num_labels, " but ",
           label_names_.size(), " label names were given");
  for (const auto& [name, child] : lm_->named_children())
    if (name != "lm_head") register_module(name, child);  // the body, shared, under transformers' names
  score = register_module("score", std::make_shared<nn::Linear>(lm_->config().n_embd, num_labels, false, gen));
}

ClassifierOutput SequenceClassifier::forward(const Tensor& ids, const Tensor& attention_mask) const {
  LD_CHECK(ids.dim() == 2, "sequence classification: ids must be [B, T], got ", shape_str(ids.shape()));
  const int64_t B = ids.size(0), T = ids.size(1);
  const std::vector<int64_t> positions = pooled_positions(attention_mask, B, T);
  models::LmOutput out = lm_->run({.ids = ids, .attention_mask = attention_mask, .hidden_only = true});
  // Row b's pooled state is row b * T + positions[b] of the flattened [B * T, C] hidden states: a
  // gather whose backward scatters into those rows only.
  std::vector<int64_t> rows(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) rows[size_t(b)] = b * T + positions[size_t(b)];
  const Tensor hidden = out.hidden.reshape({B * T, out.hidden.size(2)});
  const Tensor pooled = ops::embedding(from_vector(rows, {B}), hidden);
  return {score->forward(pooled), out.aux_loss};
}

Tensor SequenceClassifier::loss(const Tensor& logits, const Tensor& labels) const {
  LD_CHECK(logits.dim() == 2 && logits.size(1) == num_labels(), "sequence classification: logits ",
           shape_str(logits.shape()), " are not [B, num_labels=", num_labels(), "]");
  LD_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), "sequence classification: labels ",
           shape_str(labels.shape()), " do not match logits ", shape_str(logits.shape()));
  const std::vector<int64_t> values = labels.to_vector<int64_t>();
  for (size_t b = 0; b < values.size(); ++b)
    LD_CHECK(values[b] >= 0 && values[b] < num_labels(), "sequence classification: row ", b, " has label ", values[b],
             ", outside [0, num_labels=", num_labels(), ")");
  return ops::cross_entropy(logits, labels);
}

std::vector<int64_t> SequenceClassifier::predictions(const Tensor& logits) {
  return ops::argmax(logits, -1).to_vector<int64_t>();
}

void SequenceClassifier::check_label_set(const std::vector<std::string>& label_set) const {
  LD_CHECK(int64_t(label_set.size()) == num_labels(), "sequence classification: the data has ", label_set.size(),
           " labels but the model's head has num_labels=", num_labels());
  if (label_names_ == default_label_names(num_labels())) return;  // unnamed head: any names fit
  for (size_t i = 0; i < label_set.size(); ++i)
    LD_CHECK(label_set[i] == label_names_[i], "sequence classification: label ", i, " is \"", label_set[i],
             "\" in the data but \"", label_names_[i], "\" in the model (id2label)");
}

io::HfModelConfig SequenceClassifier::hf_config() const {
  io::HfModelConfig c = lm_->hf_config();
  c.architecture = sequence_classification_architecture(c.model_type);
  c.num_labels = num_labels();
  return c;
}

void save_sequence_classifier(const SequenceClassifier& model, const fs::path& dir, bool force,
                              const fs::path& tokenizer_from) {
  write_folder_atomically(dir, force, [&](const fs::path& tmp) {
    // save_pretrained writes the files into a subfolder of the temporary one; they move up, and
    // config.json gains what io::hf_config does not write for causal models (num_labels, id2label,
    // label2id).
    const fs::path inner = tmp / "model";
    models::save_pretrained(model, model.hf_config(), inner, /*force=*/false, tokenizer_from);
    for (const auto& entry : fs::directory_iterator(inner)) fs::rename(entry.path(), tmp / entry.path().filename());
    fs::remove(inner);
    std::ifstream in(tmp / "config.json");
    const json written = json::parse(in);
    write_file_atomically(tmp / "config.json", with_labels(written, model.label_names()).dump(2) + "\n");
  });
}

std::unique_ptr<SequenceClassifier> load_sequence_classifier(const fs::path& dir) {
  const io::HfModelConfig config = io::read_hf_config(dir);
  std::vector<std::string> labels = read_label_names(dir / "config.json");
  Generator gen(0);  // the random init is overwritten by the checkpoint
  std::unique_ptr<models::CausalLM> lm;
  try {
    lm = models::make_causal_lm(config, gen);
  } catch (const Error& e) {
    LD_FAIL((dir / "config.json").string(), ": ", e.what());
  }
  const models::CausalLM* body = lm.get();
  auto model = std::make_unique<SequenceClassifier>(std::move(lm), int64_t(labels.size()), gen, std::move(labels));
  models::load_weights(*model, dir, [body](nn::StateDict state) {
    nn::StateDict head;  // the body's names go through the LM's own mapping; score.* stays as it is
    for (auto it = state.begin(); it != state.end();)
      if (it->first.rfind(kScorePrefix, 0) == 0) {
        head.insert(state.extract(it++));
      } else {
        ++it;
      }
    nn::StateDict out = body->normalize_checkpoint(std::move(state));
    out.merge(head);
    return out;
  });
  return model;
}

LogitsFn logits_fn(const SequenceClassifier& model) {
  return [&model](const ClassifyBatch& batch) { return model.forward(batch.input_ids, batch.attention_mask).logits; };
}

LogitsFn logits_fn(const models::BertForSequenceClassification& model) {
  return [&model](const ClassifyBatch& batch) {
    return model.forward({.ids = batch.input_ids, .attention_mask = batch.attention_mask, .token_type_ids = {}});
  };
}

}  // namespace ld::tune
