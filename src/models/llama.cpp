#include "models/llama.hpp"

#include <string>
#include <tuple>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "ops/ops.hpp"

namespace ld::models {

namespace {

std::shared_ptr<nn::Linear> linear(int64_t in, int64_t out, Generator& gen) {
  return std::make_shared<nn::Linear>(in, out, /*bias=*/false, gen);
}

// [B, H, T, D] -> [B, T, H*D]
Tensor merge_heads(const Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

}  // namespace

// --- attention

LlamaAttention::LlamaAttention(const StackConfig& c, Generator& gen)
    : n_head_(c.n_head), n_kv_head_(c.n_kv_head), head_dim_(c.head_dim()), rope_theta_(c.rope_theta) {
  const int64_t C = c.n_embd, D = c.head_dim();
  q_proj = register_module("q_proj", linear(C, c.n_head * D, gen));
  k_proj = register_module("k_proj", linear(C, c.n_kv_head * D, gen));
  v_proj = register_module("v_proj", linear(C, c.n_kv_head * D, gen));
  o_proj = register_module("o_proj", linear(c.n_head * D, C, gen));
}

Tensor LlamaAttention::forward(const Tensor& x, const Tensor& positions, KvCache* cache, int64_t layer) const {
  const int64_t B = x.size(0), T = x.size(1), D = head_dim_;
  const ops::RopeOptions rope{.theta = rope_theta_, .rotary_dim = 0, .layout = RopeLayout::half};
  // rope wants [B, T, H, D]; attention wants [B, H, T, D]
  auto project = [&](const nn::Linear& proj, int64_t heads) { return proj.forward(x).reshape({B, T, heads, D}); };
  Tensor q = ops::rope(project(*q_proj, n_head_), positions, rope).permute({0, 2, 1, 3});
  Tensor k = ops::rope(project(*k_proj, n_kv_head_), positions, rope).permute({0, 2, 1, 3});
  Tensor v = project(*v_proj, n_kv_head_).permute({0, 2, 1, 3});
  // With a cache Tk = cached + T > Tq = T; causal attention aligns the last query with the last key.
  if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
  return o_proj->forward(merge_heads(ops::attention(q, k, v)));
}

// --- MLP

LlamaMlp::LlamaMlp(const StackConfig& c, Generator& gen) {
  gate_proj = register_module("gate_proj", linear(c.n_embd, c.intermediate_size, gen));
  up_proj = register_module("up_proj", linear(c.n_embd, c.intermediate_size, gen));
  down_proj = register_module("down_proj", linear(c.intermediate_size, c.n_embd, gen));
}

Tensor LlamaMlp::forward(const Tensor& x) const {
  return down_proj->forward(ops::swiglu(gate_proj->forward(x), up_proj->forward(x)));
}

// --- layers and model

LlamaDecoderLayer::LlamaDecoderLayer(const StackConfig& c, Generator& gen) {
  input_layernorm = register_module("input_layernorm", std::make_shared<nn::RMSNorm>(c.n_embd, c.norm_eps));
  self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(c, gen));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<nn::RMSNorm>(c.n_embd, c.norm_eps));
  mlp = register_module("mlp", std::make_shared<LlamaMlp>(c, gen));
}

LlamaModel::LlamaModel(const StackConfig& c, Generator& gen) {
  embed_tokens = register_module("embed_tokens", std::make_shared<nn::Embedding>(c.vocab_size, c.n_embd, gen));
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) layers->push_back(std::make_shared<LlamaDecoderLayer>(c, gen));
  norm = register_module("norm", std::make_shared<nn::RMSNorm>(c.n_embd, c.norm_eps));
}

LlamaDecoderLayer& LlamaModel::layer(int64_t i) const {
  return *layers->at<LlamaDecoderLayer>(static_cast<size_t>(i));
}

LlamaForCausalLM::LlamaForCausalLM(const StackConfig& config, Generator& gen, bool tie_word_embeddings)
    : config_(config), tied_(tie_word_embeddings) {
  validate(config);
  LD_CHECK(config.kind == StackKind::llama, "LlamaForCausalLM: the config is not a LLaMA stack");
  model = register_module("model", std::make_shared<LlamaModel>(config, gen));
  lm_head = register_module("lm_head", linear(config.n_embd, config.vocab_size, gen));
  if (tied_) lm_head->tie_weight(model->embed_tokens->weight);
}

std::unique_ptr<LlamaForCausalLM> LlamaForCausalLM::load(const std::filesystem::path& dir) {
  const io::HfModelConfig hf = io::read_hf_config(dir);
  Generator gen(0);  // the random init is overwritten by the checkpoint
  auto lm = std::make_unique<LlamaForCausalLM>(hf.stack, gen, hf.tie_word_embeddings);
  lm->load_state_dict(io::load_checkpoint(dir), /*strict=*/true);
  return lm;
}

Tensor LlamaForCausalLM::forward(const Tensor& ids, KvCache* cache) const {
  LD_CHECK(ids.dim() == 2 && (ids.dtype() == DType::i64 || ids.dtype() == DType::i32),
           "LlamaForCausalLM: ids must be i32/i64 [B, T], got ", dtype_name(ids.dtype()), " ", shape_str(ids.shape()));
  const int64_t T = ids.size(1);
  int64_t start = 0;
  if (cache != nullptr) {
    LD_CHECK(cache->n_layer() == config_.n_layer && cache->batch() == ids.size(0), "LlamaForCausalLM: the KV cache (",
             cache->n_layer(), " layers, batch ", cache->batch(), ") does not fit this model (", config_.n_layer,
             " layers) and batch ", ids.size(0));
    cache->check_room(T);  // before any layer writes
    start = cache->length();
  }
  Tensor positions = arange(start + T).narrow(0, start, T).contiguous();

  // The pre-norm residual stream with each norm fused into the residual add before it, exactly as
  // models::forward_logits does it.
  Tensor residual = model->embed_tokens->forward(ids);
  Tensor normed = model->layer(0).input_layernorm->forward(residual);
  for (int64_t i = 0; i < config_.n_layer; ++i) {
    const LlamaDecoderLayer& layer = model->layer(i);
    const nn::RMSNorm& post = *layer.post_attention_layernorm;
    ops::ResidualNorm mid = ops::add_rmsnorm(layer.self_attn->forward(normed, positions, cache, i), residual,
                                             post.weight, post.eps);
    const nn::RMSNorm& next = i + 1 < config_.n_layer ? *model->layer(i + 1).input_layernorm : *model->norm;
    ops::ResidualNorm out = ops::add_rmsnorm(layer.mlp->forward(mid.normed), mid.sum, next.weight, next.eps);
    residual = out.sum;
    normed = out.normed;
  }
  if (cache != nullptr) cache->advance(T);
  return lm_head->forward(normed);
}

}  // namespace ld::models
