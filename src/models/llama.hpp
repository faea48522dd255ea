#pragma once
// The LLaMA family as an nn::Module tree whose parameter names are exactly Hugging Face's
// (model.embed_tokens, model.layers.{i}.self_attn.q_proj, ..., model.norm, lm_head), so a
// model.safetensors loads with load_state_dict(strict). The math is models::forward_logits':
// RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU. One class serves the variants, which
// differ only in what config.json switches on:
//   llama    the base
//   mistral  sliding-window attention (keys at most sliding_window slots back)
//   qwen2    biases on the q/k/v projections
//   mixtral  each layer's MLP is a Mixture of Experts: model.layers.{i}.block_sparse_moe.{gate,
//            experts.{e}.w1/w2/w3}, plus sliding window; run() returns the routers' auxiliary loss
#include <cstdint>
#include <filesystem>
#include <memory>

#include "core/tensor.hpp"
#include "models/causal_lm.hpp"
#include "models/kv_cache.hpp"
#include "nn/layers.hpp"
#include "nn/moe.hpp"
#include "nn/module.hpp"

namespace ld::models {

class LlamaAttention : public nn::Module {
 public:
  LlamaAttention(const io::HfModelConfig& config, Generator& gen);
  // x [B, T, C]; with a cache, attends over the cached keys plus these.
  Tensor forward(const Tensor& x, const AttentionContext& ctx, KvCache* cache, int64_t layer) const;

  std::shared_ptr<nn::Linear> q_proj, k_proj, v_proj, o_proj;

 private:
  int64_t n_head_, n_kv_head_, head_dim_;
  double rope_theta_;
};

class LlamaMlp : public nn::FeedForward {
 public:
  LlamaMlp(const StackConfig& config, Generator& gen);
  Tensor forward(const Tensor& x) const override;

  std::shared_ptr<nn::Linear> gate_proj, up_proj, down_proj;
};

class LlamaDecoderLayer : public nn::Module {
 public:
  LlamaDecoderLayer(const io::HfModelConfig& config, Generator& gen);

  std::shared_ptr<nn::RMSNorm> input_layernorm;
  std::shared_ptr<LlamaAttention> self_attn;
  std::shared_ptr<nn::RMSNorm> post_attention_layernorm;
  std::shared_ptr<LlamaMlp> mlp;                   // dense models
  std::shared_ptr<nn::MoeFfn> block_sparse_moe;    // mixtral
};

// HF's LlamaModel: the embedding, the layers and the final norm (the "model." prefix).
class LlamaModel : public nn::Module {
 public:
  LlamaModel(const io::HfModelConfig& config, Generator& gen);

  std::shared_ptr<nn::Embedding> embed_tokens;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::RMSNorm> norm;

  LlamaDecoderLayer& layer(int64_t i) const;
};

class LlamaForCausalLM : public CausalLM {
 public:
  // Random weights from `gen` (N(0, 0.02) matrices, norm weights 1, biases 0). With
  // tie_word_embeddings lm_head's weight is the token embedding (no separate lm_head parameter).
  LlamaForCausalLM(const io::HfModelConfig& config, Generator& gen);

  // Without a cache: positions 0..T-1 (or from the attention mask), causal. With one: the new
  // tokens continue the cached sequence, their keys/values are appended and the cache length grows.
  LmOutput run(const LmInputs& inputs) const override;
  // Drops model.layers.{i}.self_attn.rotary_emb.inv_freq, a buffer that checkpoints saved before
  // transformers 4.31 carry (transformers ignores it too; RoPE is computed from rope_theta).
  nn::StateDict normalize_checkpoint(nn::StateDict state) const override;
  const nn::Linear& output_head() const override { return *lm_head; }

  std::shared_ptr<LlamaModel> model;
  std::shared_ptr<nn::Linear> lm_head;
};

}  // namespace ld::models
