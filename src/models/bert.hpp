#pragma once
// BERT as nn::Module trees whose parameter names are exactly Hugging Face's, so a transformers
// folder (config.json with model_type "bert" + model.safetensors) loads with a strict
// load_state_dict and save_pretrained writes one transformers reads back:
//
//   BertModel                      embeddings.*, encoder.layer.{i}.*, pooler.dense.*  (no prefix, as
//                                  transformers' bare BertModel saves it)
//   BertForMaskedLM                bert.{embeddings,encoder}.*, cls.predictions.{transform.*, bias,
//                                  decoder.weight}: no pooler (add_pooling_layer=False in transformers)
//   BertForSequenceClassification  bert.*, bert.pooler.*, classifier.{weight,bias}
//
// The math is post-LN: h = LayerNorm(sublayer(h) + h) after attention and after the MLP, with
// bidirectional attention that never attends to padding keys. Embeddings are word + position
// (0..T-1) + token type, then LayerNorm. hidden_act "gelu" is the exact erf GELU, "gelu_new" /
// "gelu_pytorch_tanh" / "gelu_fast" the tanh approximation. No dropout: the forward is the eval one.
//
// Weight tying as in transformers: cls.predictions.decoder.weight is the word embedding when
// tie_word_embeddings (then saved once, as bert.embeddings.word_embeddings.weight), and
// cls.predictions.decoder.bias is always the same tensor as cls.predictions.bias (saved under the
// latter name).
#include <cstdint>
#include <filesystem>
#include <memory>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace ld::models {

// One batch. attention_mask and token_type_ids are optional (undefined = all tokens real / all
// type 0); when given they are i32/i64/u8 [B, T] like ids. Padded positions still get (finite)
// outputs; only the real tokens' are meaningful.
struct BertInputs {
  Tensor ids;             // i32/i64 [B, T], T <= max_position_embeddings, ids < vocab_size
  Tensor attention_mask;  // 1 = token, 0 = padding (any side)
  Tensor token_type_ids;  // segment ids in [0, type_vocab_size)
};

struct BertOutput {
  Tensor last_hidden_state;  // [B, T, C]
  Tensor pooled;             // [B, C] = tanh(dense(h[:, 0])); undefined without a pooler
};

// --- the blocks, one class per Hugging Face module so the names fall out of the tree

class BertEmbeddings : public nn::Module {
 public:
  BertEmbeddings(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& ids, const Tensor& token_type_ids) const;  // -> [B, T, C], normed

  std::shared_ptr<nn::Embedding> word_embeddings, position_embeddings, token_type_embeddings;
  std::shared_ptr<nn::LayerNorm> LayerNorm;  // NOLINT: Hugging Face's name
};

class BertSelfAttention : public nn::Module {
 public:
  BertSelfAttention(const io::HfModelConfig& config, Generator& gen);
  // x [B, T, C]; mask undefined or additive f32 [B, 1, 1, T]. Returns the merged heads [B, T, C].
  Tensor forward(const Tensor& x, const Tensor& mask) const;

  std::shared_ptr<nn::Linear> query, key, value;

 private:
  int64_t n_head_, head_dim_;
};

// dense then LayerNorm(dense(x) + residual): BertSelfOutput and BertOutput share this shape.
class BertDenseResidualNorm : public nn::Module {
 public:
  BertDenseResidualNorm(int64_t in, int64_t out, double eps, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& residual) const;

  std::shared_ptr<nn::Linear> dense;
  std::shared_ptr<nn::LayerNorm> LayerNorm;  // NOLINT: Hugging Face's name
};

class BertAttention : public nn::Module {
 public:
  BertAttention(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& mask) const;

  std::shared_ptr<BertSelfAttention> self;
  std::shared_ptr<BertDenseResidualNorm> output;
};

class BertIntermediate : public nn::Module {
 public:
  BertIntermediate(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& x) const;  // act(dense(x))

  std::shared_ptr<nn::Linear> dense;

 private:
  bool tanh_gelu_;
};

class BertLayer : public nn::Module {
 public:
  BertLayer(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& mask) const;

  std::shared_ptr<BertAttention> attention;
  std::shared_ptr<BertIntermediate> intermediate;
  std::shared_ptr<BertDenseResidualNorm> output;
};

class BertEncoder : public nn::Module {
 public:
  BertEncoder(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& mask) const;

  std::shared_ptr<nn::ModuleList> layer;
  // Activation checkpointing while recording gradients: 0 off, k recomputes layers 0, k, 2k, ...
  // in backward instead of keeping their activations (same results, less memory).
  int64_t checkpoint_every = 0;
};

class BertPooler : public nn::Module {
 public:
  BertPooler(int64_t hidden, Generator& gen);
  Tensor forward(const Tensor& hidden_states) const;  // tanh(dense(h[:, 0])) -> [B, C]

  std::shared_ptr<nn::Linear> dense;
};

// --- what every BERT class shares: its config and how a checkpoint maps onto its names

class BertPreTrainedModel : public nn::Module {
 public:
  explicit BertPreTrainedModel(io::HfModelConfig config);
  const io::HfModelConfig& hf_config() const { return config_; }
  // Drops the checkpoint tensors this class does not use but real checkpoints carry (the
  // position_ids buffer; for the MLM, the pooler and the next-sentence head), so what is left must
  // match the model exactly.
  virtual nn::StateDict normalize_checkpoint(nn::StateDict state) const;

 private:
  io::HfModelConfig config_;
};

class BertModel : public BertPreTrainedModel {
 public:
  // Random weights (N(0, 0.02) matrices and embeddings, norm weights 1, biases 0). The heads build
  // theirs without a pooler where transformers does (BertForMaskedLM).
  BertModel(const io::HfModelConfig& config, Generator& gen, bool add_pooling_layer = true);
  BertOutput forward(const BertInputs& inputs) const;

  // A checkpoint of a head model (bert.* names) loads too: the prefix goes, the heads are dropped.
  nn::StateDict normalize_checkpoint(nn::StateDict state) const override;
  // dir/config.json + safetensors weights, strict. Errors name the folder and the tensor.
  static std::unique_ptr<BertModel> load(const std::filesystem::path& dir);

  std::shared_ptr<BertEmbeddings> embeddings;
  std::shared_ptr<BertEncoder> encoder;
  std::shared_ptr<BertPooler> pooler;  // null without a pooling layer
};

// cls.predictions.transform: dense -> act -> LayerNorm.
class BertPredictionHeadTransform : public nn::Module {
 public:
  BertPredictionHeadTransform(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& x) const;

  std::shared_ptr<nn::Linear> dense;
  std::shared_ptr<nn::LayerNorm> LayerNorm;  // NOLINT: Hugging Face's name

 private:
  bool tanh_gelu_;
};

// A Linear whose bias is a tensor owned elsewhere (cls.predictions.bias).
class BertTiedBiasLinear : public nn::Linear {
 public:
  BertTiedBiasLinear(int64_t in, int64_t out, const Tensor& bias, Generator& gen);
};

// cls.predictions: own bias [V] (registered first, so it is listed and saved under this name),
// then the transform and the decoder [V, C] whose bias is the same tensor.
class BertLMPredictionHead : public nn::Module {
 public:
  BertLMPredictionHead(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const Tensor& hidden_states) const;  // -> logits [..., V]

  Tensor bias;
  std::shared_ptr<BertPredictionHeadTransform> transform;
  std::shared_ptr<BertTiedBiasLinear> decoder;
};

class BertOnlyMLMHead : public nn::Module {  // "cls"
 public:
  BertOnlyMLMHead(const io::HfModelConfig& config, Generator& gen);

  std::shared_ptr<BertLMPredictionHead> predictions;
};

class BertForMaskedLM : public BertPreTrainedModel {
 public:
  BertForMaskedLM(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const BertInputs& inputs) const;  // logits [B, T, V]
  // Mean cross-entropy over the positions whose label is not -100 (labels i32/i64 [B, T]).
  Tensor mlm_loss(const BertInputs& inputs, const Tensor& labels) const;

  nn::StateDict normalize_checkpoint(nn::StateDict state) const override;
  static std::unique_ptr<BertForMaskedLM> load(const std::filesystem::path& dir);

  std::shared_ptr<BertModel> bert;
  std::shared_ptr<BertOnlyMLMHead> cls;
};

class BertForSequenceClassification : public BertPreTrainedModel {
 public:
  BertForSequenceClassification(const io::HfModelConfig& config, Generator& gen);
  Tensor forward(const BertInputs& inputs) const;  // logits [B, num_labels], from the pooled output

  static std::unique_ptr<BertForSequenceClassification> load(const std::filesystem::path& dir);

  std::shared_ptr<BertModel> bert;
  std::shared_ptr<nn::Linear> classifier;
};

// The class config.architecture names (BertForMaskedLM, BertForSequenceClassification, BertModel),
// with random weights from gen. A config that is not bert is an error.
std::unique_ptr<BertPreTrainedModel> make_bert(const io::HfModelConfig& config, Generator& gen);

}  // namespace ld::models
