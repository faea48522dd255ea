#pragma once
// GPT-2 (Hugging Face's GPT2LMHeadModel) as an nn::Module tree whose parameter names and layouts are
// exactly Hugging Face's (transformer.wte, transformer.wpe, transformer.h.{i}.ln_1 / attn.c_attn /
// attn.c_proj / ln_2 / mlp.c_fc / mlp.c_proj, transformer.ln_f, lm_head), so a model.safetensors loads
// with load_state_dict(strict). The math is models::forward_logits' GPT-2: learned positions,
// pre-norm LayerNorm blocks, Conv1D projections (weights [in, out]), causal attention scaled by
// 1/sqrt(head_dim), a GELU MLP of width n_inner (tanh GELU for gelu_new / gelu_pytorch_tanh /
// gelu_fast, erf for gelu), lm_head tied to wte unless tie_word_embeddings is false.
//
// liandan's MoE GPT-2 (config.json num_local_experts > 0): each block's "mlp" is an nn::MoeFfn whose
// experts are GPT-2 MLPs (transformer.h.{i}.mlp.gate, transformer.h.{i}.mlp.experts.{e}.c_fc, ...);
// run() returns the routers' auxiliary loss.
#include <cstdint>
#include <memory>

#include "core/tensor.hpp"
#include "models/causal_lm.hpp"
#include "models/kv_cache.hpp"
#include "nn/conv1d.hpp"
#include "nn/feed_forward.hpp"
#include "nn/layers.hpp"
#include "nn/moe.hpp"
#include "nn/module.hpp"

namespace ld::models {

class Gpt2Attention : public nn::Module {
 public:
  Gpt2Attention(const io::HfModelConfig& config, Generator& gen);
  // x [B, T, C]; with a cache, attends over the cached keys plus these.
  Tensor forward(const Tensor& x, const AttentionContext& ctx, KvCache* cache, int64_t layer) const;

  std::shared_ptr<nn::Conv1D> c_attn;  // C -> 3C: q, k, v concatenated along the output
  std::shared_ptr<nn::Conv1D> c_proj;  // C -> C

 private:
  int64_t n_head_, head_dim_;
};

// GPT2MLP: c_proj(gelu(c_fc(x))). Also the expert of the MoE GPT-2.
class Gpt2Mlp : public nn::FeedForward {
 public:
  // residual_std: the init std of c_proj (GPT-2 scales residual projections by 1/sqrt(2 n_layer)).
  Gpt2Mlp(int64_t n_embd, int64_t hidden, bool tanh_gelu, double residual_std, Generator& gen);
  Tensor forward(const Tensor& x) const override;

  std::shared_ptr<nn::Conv1D> c_fc, c_proj;

 private:
  bool tanh_gelu_;
};

class Gpt2Block : public nn::Module {
 public:
  Gpt2Block(const io::HfModelConfig& config, Generator& gen);

  std::shared_ptr<nn::LayerNorm> ln_1;
  std::shared_ptr<Gpt2Attention> attn;
  std::shared_ptr<nn::LayerNorm> ln_2;
  std::shared_ptr<Gpt2Mlp> mlp;     // dense: registered as "mlp"
  std::shared_ptr<nn::MoeFfn> moe;  // MoE: registered as "mlp" instead
};

// HF's GPT2Model (the "transformer." prefix).
class Gpt2Model : public nn::Module {
 public:
  Gpt2Model(const io::HfModelConfig& config, Generator& gen);

  std::shared_ptr<nn::Embedding> wte;  // [V, C]
  std::shared_ptr<nn::Embedding> wpe;  // [n_positions, C]
  std::shared_ptr<nn::ModuleList> h;
  std::shared_ptr<nn::LayerNorm> ln_f;

  Gpt2Block& block(int64_t i) const;
};

class Gpt2LMHeadModel : public CausalLM {
 public:
  // Random weights from `gen` (HF's init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2 n_layer)),
  // LayerNorm weights 1, biases 0). Tied: lm_head's weight is wte's (no separate parameter).
  Gpt2LMHeadModel(const io::HfModelConfig& config, Generator& gen);

  // Without a cache: positions 0..T-1 (or from the attention mask), causal. With one: the new tokens
  // continue the cached sequence. More than n_positions tokens in all is an error.
  LmOutput run(const LmInputs& inputs) const override;

  // Hub GPT-2 files are saved from the bare GPT2Model: "h.0.attn.c_attn.weight", "wte.weight".
  // Adds the "transformer." prefix where missing and drops the attention buffers attn.bias (the
  // causal mask) and attn.masked_bias, which are not parameters.
  nn::StateDict normalize_checkpoint(nn::StateDict state) const override;
  const nn::Linear& output_head() const override { return *lm_head; }

  std::shared_ptr<Gpt2Model> transformer;
  std::shared_ptr<nn::Linear> lm_head;  // [V, C], no bias
};

}  // namespace ld::models
