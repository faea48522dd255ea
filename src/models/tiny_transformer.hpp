#pragma once
// A functional decoder-only transformer over a map of named parameters, in two flavours:
// GPT-2 (learned positions, LayerNorm, GELU-tanh MLP, tied lm_head) and LLaMA (RoPE rotate-half,
// RMSNorm, SwiGLU MLP, grouped-query attention, untied lm_head). Parameter names and layouts are
// Hugging Face's, so a model.safetensors from the Hub loads without renaming. This is the PyTorch
// oracle's model and the demo's, until the nn/models layer lands.
#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.hpp"

namespace ld {
class Generator;
}

namespace ld::models {

enum class StackKind { gpt2, llama };

struct StackConfig {
  StackKind kind = StackKind::gpt2;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t n_kv_head = 4;  // LLaMA grouped-query attention; must equal n_head for GPT-2
  int64_t n_embd = 64;
  int64_t vocab_size = 97;
  int64_t n_positions = 64;         // GPT-2: rows of the learned position table (max sequence length)
  int64_t intermediate_size = 172;  // LLaMA MLP width; GPT-2's is always 4 * n_embd
  double norm_eps = 1e-5;           // layer_norm_epsilon (GPT-2) / rms_norm_eps (LLaMA)
  double rope_theta = 10000.0;      // LLaMA

  int64_t head_dim() const { return n_embd / n_head; }
};

// Throws ld::Error naming the bad field (e.g. n_head does not divide n_embd).
void validate(const StackConfig& config);

using Params = std::map<std::string, Tensor>;

struct InitOptions {
  double std = 0.02;  // matrices and embeddings ~ N(0, std)
  // 0 gives the usual norm weights 1 and biases 0. Tests set it > 0 so that a backward rule which
  // forgets the norm weight or the bias cannot hide behind weight 1 and bias 0.
  double norm_and_bias_jitter = 0.0;
};

// Every parameter of the stack with its Hugging Face name, each a leaf that requires grad.
Params init_params(const StackConfig& config, Generator& gen, const InitOptions& options = {});

// ids [B, T] (i32 or i64) -> logits [B, T, vocab_size]; causal.
Tensor forward_logits(const StackConfig& config, const Params& params, const Tensor& ids);

}  // namespace ld::models
