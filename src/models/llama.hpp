#pragma once
// LLaMA as an nn::Module tree whose parameter names are exactly Hugging Face's
// (model.embed_tokens, model.layers.{i}.self_attn.q_proj, ..., model.norm, lm_head), so a
// model.safetensors loads with load_state_dict(strict). The math is models::forward_logits':
// RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU. forward() optionally uses a KvCache.
#include <cstdint>
#include <filesystem>
#include <memory>

#include "core/tensor.hpp"
#include "models/kv_cache.hpp"
#include "models/tiny_transformer.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace ld {
class Generator;
}

namespace ld::models {

class LlamaAttention : public nn::Module {
 public:
  LlamaAttention(const StackConfig& config, Generator& gen);
  // x [B, T, C]; positions i64 [T]; with a cache, attends over the cached keys plus these.
  Tensor forward(const Tensor& x, const Tensor& positions, KvCache* cache, int64_t layer) const;

  std::shared_ptr<nn::Linear> q_proj, k_proj, v_proj, o_proj;

 private:
  int64_t n_head_, n_kv_head_, head_dim_;
  double rope_theta_;
};

class LlamaMlp : public nn::Module {
 public:
  LlamaMlp(const StackConfig& config, Generator& gen);
  Tensor forward(const Tensor& x) const;

  std::shared_ptr<nn::Linear> gate_proj, up_proj, down_proj;
};

class LlamaDecoderLayer : public nn::Module {
 public:
  LlamaDecoderLayer(const StackConfig& config, Generator& gen);

  std::shared_ptr<nn::RMSNorm> input_layernorm;
  std::shared_ptr<LlamaAttention> self_attn;
  std::shared_ptr<nn::RMSNorm> post_attention_layernorm;
  std::shared_ptr<LlamaMlp> mlp;
};

// HF's LlamaModel: the embedding, the layers and the final norm (the "model." prefix).
class LlamaModel : public nn::Module {
 public:
  LlamaModel(const StackConfig& config, Generator& gen);

  std::shared_ptr<nn::Embedding> embed_tokens;
  std::shared_ptr<nn::ModuleList> layers;
  std::shared_ptr<nn::RMSNorm> norm;

  LlamaDecoderLayer& layer(int64_t i) const;
};

class LlamaForCausalLM : public nn::Module {
 public:
  // Random weights from `gen` (N(0, 0.02) matrices, norm weights 1). tie_word_embeddings shares
  // lm_head's weight with the token embedding (then there is no separate lm_head parameter).
  LlamaForCausalLM(const StackConfig& config, Generator& gen, bool tie_word_embeddings = false);

  // Reads dir/config.json and the safetensors weights; strict: every parameter must be there and
  // nothing else (a tied checkpoint has no lm_head.weight).
  static std::unique_ptr<LlamaForCausalLM> load(const std::filesystem::path& dir);

  // ids i32/i64 [B, T] -> logits [B, T, V]. Without a cache: positions 0..T-1, causal. With one:
  // positions continue from cache->length(), the new keys/values are appended and the queries
  // attend over the whole cached sequence; the cache length then grows by T.
  Tensor forward(const Tensor& ids, KvCache* cache = nullptr) const;

  // A cache sized for this model.
  KvCache make_cache(int64_t batch, int64_t max_len) const { return KvCache(config_, batch, max_len); }

  const StackConfig& config() const { return config_; }
  bool tied() const { return tied_; }

  std::shared_ptr<LlamaModel> model;
  std::shared_ptr<nn::Linear> lm_head;

 private:
  StackConfig config_;
  bool tied_;
};

}  // namespace ld::models
