#include "models/llama.hpp"

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
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

LlamaAttention::LlamaAttention(const io::HfModelConfig& hf, Generator& gen)
    : n_head_(hf.stack.n_head),
      n_kv_head_(hf.stack.n_kv_head),
      head_dim_(hf.stack.head_dim()),
      rope_theta_(hf.stack.rope_theta) {
  const int64_t C = hf.stack.n_embd, D = head_dim_;
  const bool bias = hf.attention_bias;  // Qwen2: q, k and v only
  q_proj = register_module("q_proj", std::make_shared<nn::Linear>(C, n_head_ * D, bias, gen));
  k_proj = register_module("k_proj", std::make_shared<nn::Linear>(C, n_kv_head_ * D, bias, gen));
  v_proj = register_module("v_proj", std::make_shared<nn::Linear>(C, n_kv_head_ * D, bias, gen));
  o_proj = register_module("o_proj", linear(n_head_ * D, C, gen));
}

Tensor LlamaAttention::forward(const Tensor& x, const AttentionContext& ctx, KvCache* cache, int64_t layer) const {
  const Tensor& positions = ctx.positions;
  const int64_t B = x.size(0), T = x.size(1), D = head_dim_;
  const ops::RopeOptions rope{.theta = rope_theta_, .rotary_dim = 0, .layout = RopeLayout::half};
  // rope wants [B, T, H, D]; attention wants [B, H, T, D]
  auto project = [&](const nn::Linear& proj, int64_t heads) { return proj.forward(x).reshape({B, T, heads, D}); };
  Tensor q = ops::rope(project(*q_proj, n_head_), positions, rope).permute({0, 2, 1, 3});
  Tensor k = ops::rope(project(*k_proj, n_kv_head_), positions, rope).permute({0, 2, 1, 3});
  Tensor v = project(*v_proj, n_kv_head_).permute({0, 2, 1, 3});
  // With a cache Tk = cached + T > Tq = T; causal attention aligns the last query with the last key.
  if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
  return o_proj->forward(merge_heads(ops::attention(q, k, v, {.causal = true, .scale = std::nullopt, .mask = ctx.mask})));
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

LlamaDecoderLayer::LlamaDecoderLayer(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  input_layernorm = register_module("input_layernorm", std::make_shared<nn::RMSNorm>(c.n_embd, c.norm_eps));
  self_attn = register_module("self_attn", std::make_shared<LlamaAttention>(hf, gen));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<nn::RMSNorm>(c.n_embd, c.norm_eps));
  if (!hf.moe.enabled()) {
    mlp = register_module("mlp", std::make_shared<LlamaMlp>(c, gen));
    return;
  }
  auto expert = [&c](Generator& g) { return std::make_shared<nn::MixtralExpert>(c.n_embd, c.intermediate_size, g); };
  block_sparse_moe = register_module("block_sparse_moe", std::make_shared<nn::MoeFfn>(c.n_embd, hf.moe, expert, gen));
}

LlamaModel::LlamaModel(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  embed_tokens = register_module("embed_tokens", std::make_shared<nn::Embedding>(c.vocab_size, c.n_embd, gen));
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) layers->push_back(std::make_shared<LlamaDecoderLayer>(hf, gen));
  norm = register_module("norm", std::make_shared<nn::RMSNorm>(c.n_embd, c.norm_eps));
}

LlamaDecoderLayer& LlamaModel::layer(int64_t i) const {
  return *layers->at<LlamaDecoderLayer>(static_cast<size_t>(i));
}

LlamaForCausalLM::LlamaForCausalLM(const io::HfModelConfig& hf, Generator& gen) : CausalLM(hf) {
  validate(hf.stack);
  LD_CHECK(hf.stack.kind == StackKind::llama, "LlamaForCausalLM: model_type \"", hf.model_type,
           "\" is not of the LLaMA family");
  model = register_module("model", std::make_shared<LlamaModel>(hf, gen));
  lm_head = register_module("lm_head", linear(hf.stack.n_embd, hf.stack.vocab_size, gen));
  if (hf.tie_word_embeddings) lm_head->tie_weight(model->embed_tokens->weight);
}

nn::StateDict LlamaForCausalLM::normalize_checkpoint(nn::StateDict state) const {
  const std::string buffer = ".self_attn.rotary_emb.inv_freq";
  std::erase_if(state, [&](const auto& entry) {
    const std::string& name = entry.first;
    return name.size() > buffer.size() && name.compare(name.size() - buffer.size(), buffer.size(), buffer) == 0;
  });
  return state;
}

namespace {

// One decoder layer on the pre-norm residual stream, with the next norm (the following layer's
// input_layernorm, or the final norm) fused into the residual add that ends it.
BlockOutput run_layer(const LlamaDecoderLayer& layer, const nn::RMSNorm& next, const Tensor& residual,
                      const Tensor& normed, const AttentionContext& ctx, KvCache* cache, int64_t i) {
  const nn::RMSNorm& post = *layer.post_attention_layernorm;
  ops::ResidualNorm mid =
      ops::add_rmsnorm(layer.self_attn->forward(normed, ctx, cache, i), residual, post.weight, post.eps);
  BlockOutput r;
  Tensor ffn;
  if (layer.mlp) {
    ffn = layer.mlp->forward(mid.normed);
  } else {
    nn::MoeOutput moe = layer.block_sparse_moe->forward(mid.normed);
    ffn = moe.y;
    r.aux_loss = moe.aux_loss;
    r.dropped = moe.dropped;
  }
  ops::ResidualNorm block = ops::add_rmsnorm(ffn, mid.sum, next.weight, next.eps);
  r.residual = block.sum;
  r.normed = block.normed;
  return r;
}

}  // namespace

LmOutput LlamaForCausalLM::run(const LmInputs& in) const {
  const StackConfig& c = config();
  const AttentionContext ctx = make_attention_context(in, c, hf_config().sliding_window, prompt());
  LmOutput out;
  // The pre-norm residual stream with each norm fused into the residual add before it, exactly as
  // models::forward_logits does it.
  Tensor residual = prepend_prefix(model->embed_tokens->forward(in.ids), ctx);
  Tensor normed = model->layer(0).input_layernorm->forward(residual);
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const nn::RMSNorm& next = i + 1 < c.n_layer ? *model->layer(i + 1).input_layernorm : *model->norm;
    const LlamaDecoderLayer* layer = &model->layer(i);
    const nn::RMSNorm* next_norm = &next;
    BlockOutput r = checkpoints_block(i, in)
                        ? run_checkpointed([layer, next_norm, ctx, i](const Tensor& res, const Tensor& nrm) {
                            return run_layer(*layer, *next_norm, res, nrm, ctx, nullptr, i);
                          }, residual, normed)
                        : run_layer(*layer, next, residual, normed, ctx, in.cache, i);
    if (r.aux_loss.defined()) out.aux_loss = out.aux_loss.defined() ? ops::add(out.aux_loss, r.aux_loss) : r.aux_loss;
    out.dropped_tokens += r.dropped;
    residual = r.residual;
    normed = r.normed;
  }
  if (in.cache != nullptr) in.cache->advance(normed.size(1));
  normed = drop_prefix(normed, ctx);
  if (in.last_position_only) normed = normed.narrow(1, normed.size(1) - 1, 1);
  out.hidden = normed;
  if (!in.hidden_only) out.logits = lm_head->forward(normed);
  return out;
}

}  // namespace ld::models
