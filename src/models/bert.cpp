#include "models/bert.hpp"

#include <limits>
#include <string>
#include <vector>

#include "autograd/checkpoint.hpp"
#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "models/load_weights.hpp"
#include "ops/ops.hpp"

namespace ld::models {

namespace fs = std::filesystem;

namespace {

std::shared_ptr<nn::Linear> linear(int64_t in, int64_t out, Generator& gen) {
  return std::make_shared<nn::Linear>(in, out, /*bias=*/true, gen);
}

std::shared_ptr<nn::LayerNorm> layer_norm(const io::HfModelConfig& c) {
  return std::make_shared<nn::LayerNorm>(c.stack.n_embd, c.stack.norm_eps);
}

// hidden_act: "gelu" is exact (erf); the tanh-approximation names are transformers' aliases of it.
bool is_tanh_gelu(const io::HfModelConfig& c) {
  const std::string& act = c.hidden_act;
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return true;
  LD_CHECK(act.empty() || act == "gelu", "BERT: hidden_act \"", act,
           "\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)");
  return false;
}

// [B, T, H*D] <-> [B, H, T, D]
Tensor split_heads(const Tensor& x, int64_t heads, int64_t head_dim) {
  return x.reshape({x.size(0), x.size(1), heads, head_dim}).permute({0, 2, 1, 3});
}
Tensor merge_heads(const Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

std::string describe(const Tensor& t) {
  return t.defined() ? std::string(dtype_name(t.dtype())) + " " + shape_str(t.shape()) : "nothing";
}

bool is_index_dtype(const Tensor& t) { return t.dtype() == DType::i64 || t.dtype() == DType::i32; }

// The values of an i32/i64/u8 [B, T] tensor on the host, as i64.
std::vector<int64_t> host_values(const Tensor& t) {
  return t.to(kCPU).to(DType::i64).contiguous().to_vector<int64_t>();
}

void check_ids(const Tensor& ids, const StackConfig& c) {
  LD_CHECK(ids.defined() && ids.dim() == 2 && is_index_dtype(ids), "BERT: ids must be i32/i64 [B, T], got ",
           describe(ids));
  LD_CHECK(ids.size(0) >= 1 && ids.size(1) >= 1, "BERT: ids ", shape_str(ids.shape()), " hold no tokens");
  LD_CHECK(ids.size(1) <= c.n_positions, "BERT: ", ids.size(1),
           " tokens exceed max_position_embeddings=", c.n_positions, " (the learned position table)");
}

void check_same_shape(const Tensor& t, const Tensor& ids, const char* what) {
  LD_CHECK(t.dim() == 2 && t.shape() == ids.shape(), "BERT: ", what, " ", shape_str(t.shape()),
           " must have the shape of ids ", shape_str(ids.shape()));
}

// Every value of an i32/i64 [B, T] input in [0, limit): checked here so the error names the input
// and the config field (the embedding's own check only names a table).
void check_range(const Tensor& t, const char* what, int64_t limit, const char* field) {
  const std::vector<int64_t> v = host_values(t);
  for (size_t i = 0; i < v.size(); ++i)
    LD_CHECK(v[i] >= 0 && v[i] < limit, "BERT: ", what, " holds ", v[i], " at [", int64_t(i) / t.size(1), ", ",
             int64_t(i) % t.size(1), "]; ", field, "=", limit, " allows 0..", limit - 1);
}

// Segment ids, zeros when not given.
Tensor token_types(const Tensor& types, const Tensor& ids, int64_t type_vocab_size) {
  if (!types.defined()) return zeros(ids.shape(), DType::i64, ids.device());
  check_same_shape(types, ids, "token_type_ids");
  LD_CHECK(is_index_dtype(types), "BERT: token_type_ids must be i32/i64, got ", dtype_name(types.dtype()));
  check_range(types, "token_type_ids", type_vocab_size, "type_vocab_size");
  return types;
}

// attention_mask [B, T] (1 = token, 0 = padding) -> additive f32 [B, 1, 1, T]: 0 for tokens, -inf for
// padding keys. Undefined stays undefined (every key visible).
Tensor padding_mask(const Tensor& mask, const Tensor& ids) {
  if (!mask.defined()) return Tensor();
  check_same_shape(mask, ids, "attention_mask");
  LD_CHECK(is_index_dtype(mask) || mask.dtype() == DType::u8, "BERT: attention_mask must be i64/i32/u8, got ",
           dtype_name(mask.dtype()));
  const std::vector<int64_t> v = host_values(mask);
  std::vector<float> additive(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    LD_CHECK(v[i] == 0 || v[i] == 1, "BERT: attention_mask holds ", v[i], "; only 0 and 1 are allowed");
    additive[i] = v[i] == 1 ? 0.0f : -std::numeric_limits<float>::infinity();
  }
  return from_vector(additive, {ids.size(0), 1, 1, ids.size(1)}, ids.device());
}

// Loads a folder's checkpoint into `model` (strict, after its normalize_checkpoint); errors name it.
template <typename M>
std::unique_ptr<M> load_folder(const fs::path& dir, std::unique_ptr<M> model) {
  load_weights(*model, dir, [&](nn::StateDict state) { return model->normalize_checkpoint(std::move(state)); });
  model->eval();
  return model;
}

void check_bert(const io::HfModelConfig& c) {
  LD_CHECK(c.model_type == "bert", "BERT: model_type \"", c.model_type, "\" is not bert");
  LD_CHECK(c.stack.n_head > 0 && c.stack.n_embd % c.stack.n_head == 0, "BERT: num_attention_heads=", c.stack.n_head,
           " does not divide hidden_size=", c.stack.n_embd);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// --- embeddings

BertEmbeddings::BertEmbeddings(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  word_embeddings = register_module("word_embeddings", std::make_shared<nn::Embedding>(c.vocab_size, c.n_embd, gen));
  position_embeddings =
      register_module("position_embeddings", std::make_shared<nn::Embedding>(c.n_positions, c.n_embd, gen));
  token_type_embeddings =
      register_module("token_type_embeddings", std::make_shared<nn::Embedding>(hf.type_vocab_size, c.n_embd, gen));
  LayerNorm = register_module("LayerNorm", layer_norm(hf));
}

Tensor BertEmbeddings::forward(const Tensor& ids, const Tensor& token_type_ids) const {
  const Tensor positions = arange(ids.size(1)).to(ids.device());  // [T], broadcast over the batch
  const Tensor words = ops::add(word_embeddings->forward(ids), token_type_embeddings->forward(token_type_ids));
  return LayerNorm->forward(ops::add(words, position_embeddings->forward(positions)));
}

// --- attention

BertSelfAttention::BertSelfAttention(const io::HfModelConfig& hf, Generator& gen)
    : n_head_(hf.stack.n_head), head_dim_(hf.stack.n_embd / hf.stack.n_head) {
  const int64_t C = hf.stack.n_embd;
  query = register_module("query", linear(C, C, gen));
  key = register_module("key", linear(C, C, gen));
  value = register_module("value", linear(C, C, gen));
}

Tensor BertSelfAttention::forward(const Tensor& x, const Tensor& mask) const {
  auto project = [&](const nn::Linear& proj) { return split_heads(proj.forward(x), n_head_, head_dim_); };
  return merge_heads(ops::attention(project(*query), project(*key), project(*value),
                                    {.causal = false, .scale = std::nullopt, .mask = mask}));
}

BertDenseResidualNorm::BertDenseResidualNorm(int64_t in, int64_t out, double eps, Generator& gen) {
  dense = register_module("dense", linear(in, out, gen));
  LayerNorm = register_module("LayerNorm", std::make_shared<nn::LayerNorm>(out, eps));
}

Tensor BertDenseResidualNorm::forward(const Tensor& x, const Tensor& residual) const {
  return ops::add_layernorm(dense->forward(x), residual, LayerNorm->weight, LayerNorm->bias, LayerNorm->eps).normed;
}

BertAttention::BertAttention(const io::HfModelConfig& hf, Generator& gen) {
  self = register_module("self", std::make_shared<BertSelfAttention>(hf, gen));
  output = register_module(
      "output", std::make_shared<BertDenseResidualNorm>(hf.stack.n_embd, hf.stack.n_embd, hf.stack.norm_eps, gen));
}

Tensor BertAttention::forward(const Tensor& x, const Tensor& mask) const {
  return output->forward(self->forward(x, mask), x);
}

// --- MLP, layers, encoder, pooler

BertIntermediate::BertIntermediate(const io::HfModelConfig& hf, Generator& gen) : tanh_gelu_(is_tanh_gelu(hf)) {
  dense = register_module("dense", linear(hf.stack.n_embd, hf.stack.intermediate_size, gen));
}

Tensor BertIntermediate::forward(const Tensor& x) const { return ops::gelu(dense->forward(x), tanh_gelu_); }

BertLayer::BertLayer(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  attention = register_module("attention", std::make_shared<BertAttention>(hf, gen));
  intermediate = register_module("intermediate", std::make_shared<BertIntermediate>(hf, gen));
  output = register_module("output",
                           std::make_shared<BertDenseResidualNorm>(c.intermediate_size, c.n_embd, c.norm_eps, gen));
}

Tensor BertLayer::forward(const Tensor& x, const Tensor& mask) const {
  const Tensor h = attention->forward(x, mask);
  return output->forward(intermediate->forward(h), h);
}

BertEncoder::BertEncoder(const io::HfModelConfig& hf, Generator& gen) {
  layer = register_module("layer", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < hf.stack.n_layer; ++i) layer->push_back(std::make_shared<BertLayer>(hf, gen));
}

Tensor BertEncoder::forward(const Tensor& x, const Tensor& mask) const {
  Tensor h = x;
  for (size_t i = 0; i < layer->size(); ++i) {
    const BertLayer* block = layer->at<BertLayer>(i).get();
    const bool recompute = checkpoint_every > 0 && int64_t(i) % checkpoint_every == 0 && autograd::grad_enabled();
    if (!recompute) {
      h = block->forward(h, mask);
      continue;
    }
    // The closure outlives forward() (backward runs it again): it holds the mask by value.
    auto fn = [block, mask](const std::vector<Tensor>& in) { return std::vector<Tensor>{block->forward(in[0], mask)}; };
    h = autograd::checkpoint(fn, {h})[0];
  }
  return h;
}

BertPooler::BertPooler(int64_t hidden, Generator& gen) {
  dense = register_module("dense", linear(hidden, hidden, gen));
}

Tensor BertPooler::forward(const Tensor& h) const {
  const Tensor first = h.narrow(1, 0, 1).contiguous().reshape({h.size(0), h.size(2)});  // [CLS]
  return ops::tanh(dense->forward(first));
}

// --- the shared base and BertModel

BertPreTrainedModel::BertPreTrainedModel(io::HfModelConfig config) : config_(std::move(config)) { check_bert(config_); }

nn::StateDict BertPreTrainedModel::normalize_checkpoint(nn::StateDict state) const {
  // transformers registers position_ids as a buffer; older checkpoints saved it.
  std::erase_if(state, [](const auto& entry) { return ends_with(entry.first, "embeddings.position_ids"); });
  return state;
}

BertModel::BertModel(const io::HfModelConfig& hf, Generator& gen, bool add_pooling_layer) : BertPreTrainedModel(hf) {
  embeddings = register_module("embeddings", std::make_shared<BertEmbeddings>(hf, gen));
  encoder = register_module("encoder", std::make_shared<BertEncoder>(hf, gen));
  if (add_pooling_layer) pooler = register_module("pooler", std::make_shared<BertPooler>(hf.stack.n_embd, gen));
}

BertOutput BertModel::forward(const BertInputs& in) const {
  const io::HfModelConfig& hf = hf_config();
  check_ids(in.ids, hf.stack);
  check_range(in.ids, "ids", hf.stack.vocab_size, "vocab_size");
  const Tensor types = token_types(in.token_type_ids, in.ids, hf.type_vocab_size);
  const Tensor mask = padding_mask(in.attention_mask, in.ids);
  BertOutput out;
  out.last_hidden_state = encoder->forward(embeddings->forward(in.ids, types), mask);
  if (pooler) out.pooled = pooler->forward(out.last_hidden_state);
  return out;
}

nn::StateDict BertModel::normalize_checkpoint(nn::StateDict state) const {
  state = BertPreTrainedModel::normalize_checkpoint(std::move(state));
  bool prefixed = false;
  for (const auto& [name, _] : state) prefixed = prefixed || starts_with(name, "bert.");
  if (!prefixed) return state;
  // A head model's checkpoint: keep its base model, drop the heads (as transformers does).
  nn::StateDict base;
  for (auto& [name, t] : state) {
    if (starts_with(name, "bert."))
      base.emplace(name.substr(5), t);
    else if (!starts_with(name, "cls.") && !starts_with(name, "classifier."))
      base.emplace(name, t);  // left for the strict load to report
  }
  return base;
}

std::unique_ptr<BertModel> BertModel::load(const fs::path& dir) {
  Generator gen(0);  // the random init is overwritten by the checkpoint
  return load_folder(dir, std::make_unique<BertModel>(io::read_hf_config(dir), gen));
}

// --- masked LM

BertPredictionHeadTransform::BertPredictionHeadTransform(const io::HfModelConfig& hf, Generator& gen)
    : tanh_gelu_(is_tanh_gelu(hf)) {
  dense = register_module("dense", linear(hf.stack.n_embd, hf.stack.n_embd, gen));
  LayerNorm = register_module("LayerNorm", layer_norm(hf));
}

Tensor BertPredictionHeadTransform::forward(const Tensor& x) const {
  return LayerNorm->forward(ops::gelu(dense->forward(x), tanh_gelu_));
}

BertTiedBiasLinear::BertTiedBiasLinear(int64_t in, int64_t out, const Tensor& shared_bias, Generator& gen)
    : nn::Linear(in, out, /*bias=*/true, gen) {
  bias = replace_parameter("bias", shared_bias);
}

BertLMPredictionHead::BertLMPredictionHead(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  bias = register_parameter("bias", zeros({c.vocab_size}));
  transform = register_module("transform", std::make_shared<BertPredictionHeadTransform>(hf, gen));
  decoder = register_module("decoder", std::make_shared<BertTiedBiasLinear>(c.n_embd, c.vocab_size, bias, gen));
}

Tensor BertLMPredictionHead::forward(const Tensor& h) const { return decoder->forward(transform->forward(h)); }

BertOnlyMLMHead::BertOnlyMLMHead(const io::HfModelConfig& hf, Generator& gen) {
  predictions = register_module("predictions", std::make_shared<BertLMPredictionHead>(hf, gen));
}

BertForMaskedLM::BertForMaskedLM(const io::HfModelConfig& hf, Generator& gen) : BertPreTrainedModel(hf) {
  bert = register_module("bert", std::make_shared<BertModel>(hf, gen, /*add_pooling_layer=*/false));
  cls = register_module("cls", std::make_shared<BertOnlyMLMHead>(hf, gen));
  if (hf.tie_word_embeddings) cls->predictions->decoder->tie_weight(bert->embeddings->word_embeddings->weight);
}

Tensor BertForMaskedLM::forward(const BertInputs& in) const {
  return cls->predictions->forward(bert->forward(in).last_hidden_state);
}

Tensor BertForMaskedLM::mlm_loss(const BertInputs& in, const Tensor& labels) const {
  LD_CHECK(labels.defined() && is_index_dtype(labels), "BertForMaskedLM: labels must be i32/i64 [B, T], got ",
           describe(labels));
  check_same_shape(labels, in.ids, "labels");
  return ops::cross_entropy(forward(in), labels, {.ignore_index = -100, .label_smoothing = 0.0});
}

nn::StateDict BertForMaskedLM::normalize_checkpoint(nn::StateDict state) const {
  state = BertPreTrainedModel::normalize_checkpoint(std::move(state));
  // Pretraining checkpoints (bert-base-uncased) also hold the pooler and the next-sentence head.
  std::erase_if(state, [](const auto& entry) {
    return starts_with(entry.first, "bert.pooler.") || starts_with(entry.first, "cls.seq_relationship.");
  });
  return state;
}

std::unique_ptr<BertForMaskedLM> BertForMaskedLM::load(const fs::path& dir) {
  Generator gen(0);
  return load_folder(dir, std::make_unique<BertForMaskedLM>(io::read_hf_config(dir), gen));
}

// --- sequence classification

BertForSequenceClassification::BertForSequenceClassification(const io::HfModelConfig& hf, Generator& gen)
    : BertPreTrainedModel(hf) {
  bert = register_module("bert", std::make_shared<BertModel>(hf, gen));
  classifier = register_module("classifier", linear(hf.stack.n_embd, hf.num_labels, gen));
}

Tensor BertForSequenceClassification::forward(const BertInputs& in) const {
  return classifier->forward(bert->forward(in).pooled);
}

std::unique_ptr<BertForSequenceClassification> BertForSequenceClassification::load(const fs::path& dir) {
  Generator gen(0);
  return load_folder(dir, std::make_unique<BertForSequenceClassification>(io::read_hf_config(dir), gen));
}

std::unique_ptr<BertPreTrainedModel> make_bert(const io::HfModelConfig& config, Generator& gen) {
  check_bert(config);
  const std::string& a = config.architecture;
  if (a == "BertForMaskedLM" || a.empty()) return std::make_unique<BertForMaskedLM>(config, gen);
  if (a == "BertForSequenceClassification") return std::make_unique<BertForSequenceClassification>(config, gen);
  if (a == "BertModel") return std::make_unique<BertModel>(config, gen);
  LD_FAIL("BERT: architecture \"", a,
          "\" is not supported (supported: BertForMaskedLM, BertForSequenceClassification, BertModel)");
}

}  // namespace ld::models
