#include "models/gpt2.hpp"

#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "ops/ops.hpp"

namespace ld::models {

namespace {

constexpr double kInitStd = 0.02;

// GPT-2 scales the init of the projections that write into the residual stream (attn.c_proj,
// mlp.c_proj) by 1/sqrt(2 n_layer), as GPT2PreTrainedModel._init_weights does.
double residual_std(const StackConfig& c) { return kInitStd / std::sqrt(2.0 * double(c.n_layer)); }

// activation_function: gelu_new, gelu_pytorch_tanh and gelu_fast are the tanh approximation; gelu is
// erf. read_hf_config has already refused anything else; an empty name is GPT-2's default gelu_new.
bool uses_tanh_gelu(const std::string& act) {
  if (act.empty() || act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return true;
  LD_CHECK(act == "gelu", "GPT-2: activation_function \"", act,
           "\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast)");
  return false;
}

// [B, T, H*D] -> [B, H, T, D], a view
Tensor split_heads(const Tensor& x, int64_t heads, int64_t head_dim) {
  return x.reshape({x.size(0), x.size(1), heads, head_dim}).permute({0, 2, 1, 3});
}
// [B, H, T, D] -> [B, T, H*D]
Tensor merge_heads(const Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// A buffer of GPT2Attention, not a parameter: "...attn.bias" (the causal mask) or "...attn.masked_bias".
bool is_attention_buffer(const std::string& name) {
  auto ends_with = [&name](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias");
}

bool starts_with(const std::string& name, const std::string& prefix) { return name.rfind(prefix, 0) == 0; }

}  // namespace

// --- attention

Gpt2Attention::Gpt2Attention(const io::HfModelConfig& hf, Generator& gen)
    : n_head_(hf.stack.n_head), head_dim_(hf.stack.head_dim()) {
  const int64_t C = hf.stack.n_embd;
  c_attn = register_module("c_attn", std::make_shared<nn::Conv1D>(C, 3 * C, gen, kInitStd));
  c_proj = register_module("c_proj", std::make_shared<nn::Conv1D>(C, C, gen, residual_std(hf.stack)));
}

Tensor Gpt2Attention::forward(const Tensor& x, const AttentionContext& ctx, KvCache* cache, int64_t layer) const {
  const int64_t C = n_head_ * head_dim_;
  std::vector<Tensor> qkv = ops::split(c_attn->forward(x), {C, C, C}, -1);
  Tensor q = split_heads(qkv[0], n_head_, head_dim_);
  Tensor k = split_heads(qkv[1], n_head_, head_dim_);
  Tensor v = split_heads(qkv[2], n_head_, head_dim_);
  // With a cache Tk = cached + T > Tq = T; causal attention aligns the last query with the last key.
  if (cache != nullptr) std::tie(k, v) = cache->append(layer, k, v);
  Tensor y = ops::attention(q, k, v, {.causal = true, .scale = std::nullopt, .mask = ctx.mask});
  return c_proj->forward(merge_heads(y));
}

// --- MLP

Gpt2Mlp::Gpt2Mlp(int64_t n_embd, int64_t hidden, bool tanh_gelu, double proj_std, Generator& gen)
    : tanh_gelu_(tanh_gelu) {
  c_fc = register_module("c_fc", std::make_shared<nn::Conv1D>(n_embd, hidden, gen, kInitStd));
  c_proj = register_module("c_proj", std::make_shared<nn::Conv1D>(hidden, n_embd, gen, proj_std));
}

// Plain f32 Conv1Ds around a tanh GELU go as one op (ops::gelu_mlp: the GELU in the GEMMs'
// epilogues, the hidden activation 16-bit only under autocast); adapters, bf16 inference weights or
// the erf GELU take the three ops.
Tensor Gpt2Mlp::forward(const Tensor& x) const {
  const bool fusable = tanh_gelu_ && c_fc->adapters().empty() && c_proj->adapters().empty() &&
                       c_fc->weight.dtype() == DType::f32 && c_proj->weight.dtype() == DType::f32;
  if (fusable)
    return ops::gelu_mlp(x, c_fc->weight, c_fc->bias, c_proj->weight, c_proj->bias, ops::WeightLayout::in_out);
  return c_proj->forward(ops::gelu(c_fc->forward(x), tanh_gelu_));
}

// --- blocks and model

Gpt2Block::Gpt2Block(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(c.n_embd, c.norm_eps));
  attn = register_module("attn", std::make_shared<Gpt2Attention>(hf, gen));
  ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(c.n_embd, c.norm_eps));
  const bool tanh_gelu = uses_tanh_gelu(hf.hidden_act);
  const double proj_std = residual_std(c);
  if (!hf.moe.enabled()) {
    mlp = register_module("mlp", std::make_shared<Gpt2Mlp>(c.n_embd, c.intermediate_size, tanh_gelu, proj_std, gen));
    return;
  }
  auto expert = [&c, tanh_gelu, proj_std](Generator& g) {
    return std::make_shared<Gpt2Mlp>(c.n_embd, c.intermediate_size, tanh_gelu, proj_std, g);
  };
  moe = register_module("mlp", std::make_shared<nn::MoeFfn>(c.n_embd, hf.moe, expert, gen));
}

Gpt2Model::Gpt2Model(const io::HfModelConfig& hf, Generator& gen) {
  const StackConfig& c = hf.stack;
  wte = register_module("wte", std::make_shared<nn::Embedding>(c.vocab_size, c.n_embd, gen));
  wpe = register_module("wpe", std::make_shared<nn::Embedding>(c.n_positions, c.n_embd, gen));
  h = register_module("h", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < c.n_layer; ++i) h->push_back(std::make_shared<Gpt2Block>(hf, gen));
  ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(c.n_embd, c.norm_eps));
}

Gpt2Block& Gpt2Model::block(int64_t i) const { return *h->at<Gpt2Block>(static_cast<size_t>(i)); }

Gpt2LMHeadModel::Gpt2LMHeadModel(const io::HfModelConfig& hf, Generator& gen) : CausalLM(hf) {
  LD_CHECK(hf.stack.kind == StackKind::gpt2 && hf.model_type == "gpt2", "Gpt2LMHeadModel: model_type \"",
           hf.model_type, "\" is not gpt2");
  validate(hf.stack);
  LD_CHECK(hf.stack.intermediate_size >= 1, "Gpt2LMHeadModel: n_inner=", hf.stack.intermediate_size,
           " must be positive");
  transformer = register_module("transformer", std::make_shared<Gpt2Model>(hf, gen));
  lm_head = register_module("lm_head", std::make_shared<nn::Linear>(hf.stack.n_embd, hf.stack.vocab_size,
                                                                      /*bias=*/false, gen));
  if (hf.tie_word_embeddings) lm_head->tie_weight(transformer->wte->weight);
}

namespace {

// One block on the pre-norm residual stream, with the next LayerNorm (the following block's ln_1, or
// ln_f) fused into the residual add that ends it.
BlockOutput run_block(const Gpt2Block& block, const nn::LayerNorm& next, const Tensor& residual, const Tensor& normed,
                      const AttentionContext& ctx, KvCache* cache, int64_t i) {
  const nn::LayerNorm& ln_2 = *block.ln_2;
  ops::ResidualNorm mid =
      ops::add_layernorm(block.attn->forward(normed, ctx, cache, i), residual, ln_2.weight, ln_2.bias, ln_2.eps);
  BlockOutput r;
  Tensor ffn;
  if (block.mlp) {
    ffn = block.mlp->forward(mid.normed);
  } else {
    nn::MoeOutput moe = block.moe->forward(mid.normed);
    ffn = moe.y;
    r.aux_loss = moe.aux_loss;
    r.dropped = moe.dropped;
  }
  ops::ResidualNorm end = ops::add_layernorm(ffn, mid.sum, next.weight, next.bias, next.eps);
  r.residual = end.sum;
  r.normed = end.normed;
  return r;
}

}  // namespace

LmOutput Gpt2LMHeadModel::run(const LmInputs& in) const {
  const StackConfig& c = config();
  const AttentionContext ctx = make_attention_context(in, c, /*sliding_window=*/0, prompt());
  LmOutput out;
  // positions [T] or [B, T] -> [T, C] or [B, T, C], broadcast over the batch; a prompt-tuning prefix
  // takes the first positions, as PEFT's inputs_embeds do
  Tensor residual =
      ops::add(prepend_prefix(transformer->wte->forward(in.ids), ctx), transformer->wpe->forward(ctx.positions));
  Tensor normed = transformer->block(0).ln_1->forward(residual);
  // The pre-norm residual stream with each LayerNorm fused into the residual add before it, exactly
  // as models::forward_logits does it.
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const nn::LayerNorm& next = i + 1 < c.n_layer ? *transformer->block(i + 1).ln_1 : *transformer->ln_f;
    BlockOutput r = checkpoints_block(i, in)
                        ? run_checkpointed([block = &transformer->block(i), next_norm = &next, ctx, i](
                                               const Tensor& res, const Tensor& nrm) {
                            return run_block(*block, *next_norm, res, nrm, ctx, nullptr, i);
                          }, residual, normed)
                        : run_block(transformer->block(i), next, residual, normed, ctx, in.cache, i);
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

nn::StateDict Gpt2LMHeadModel::normalize_checkpoint(nn::StateDict state) const {
  nn::StateDict out;
  for (auto& [name, t] : state) {
    if (is_attention_buffer(name)) continue;
    const bool ours = starts_with(name, "transformer.") || starts_with(name, "lm_head.");
    out.emplace(ours ? name : "transformer." + name, std::move(t));
  }
  return out;
}

}  // namespace ld::models
