#pragma once
// The weights of a GPT-2 or dense LLaMA-family model as plain pointers, for infer::DecodeStep: read
// once from the module tree (which keeps owning them), so a decode step touches no Tensor.
#include <cstdint>
#include <string>
#include <vector>

namespace ld::models {
class CausalLM;
}

namespace ld::infer::detail {

// A projection's weight, f32 or bf16 (infer::to_bf16_weights): [out, in] (nn::Linear) or [in, out]
// (nn::Conv1D, w_kn), and its bias or nullptr.
struct ProjectionWeights {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  const float* bias = nullptr;
  int64_t in = 0, out = 0;
  bool w_kn = false;
};

struct NormWeights {
  const float* weight = nullptr;
  const float* bias = nullptr;  // LayerNorm only
  float eps = 0.0f;
};

struct TableWeights {  // an embedding table [rows, dim], f32 or bf16
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
  int64_t rows = 0, dim = 0;
};

struct LayerWeights {
  NormWeights attn_norm, mlp_norm;  // GPT-2 ln_1, ln_2; LLaMA input_layernorm, post_attention_layernorm
  ProjectionWeights qkv;            // GPT-2 c_attn (q, k, v concatenated along the output)
  ProjectionWeights q, k, v;        // LLaMA
  ProjectionWeights o;              // GPT-2 attn.c_proj; LLaMA o_proj
  ProjectionWeights up, gate, down; // GPT-2 c_fc (up) and mlp.c_proj (down); LLaMA up, gate, down
};

struct ModelWeights {
  bool gpt2 = false;  // else the LLaMA family
  int64_t n_head = 0, n_kv_head = 0, head_dim = 0, n_embd = 0, hidden = 0, vocab = 0, n_positions = 0;
  int64_t sliding_window = 0;  // 0 = none
  bool tanh_gelu = true;       // GPT-2's activation
  double rope_theta = 10000.0;
  TableWeights token_embedding, position_embedding;  // position: GPT-2 only
  std::vector<LayerWeights> layers;
  NormWeights final_norm;
  ProjectionWeights lm_head;
};

// "" when every weight can be read as above; otherwise why not.
std::string unsupported_reason(const models::CausalLM& model);
// Throws ld::Error with unsupported_reason when it is not empty.
ModelWeights read_weights(const models::CausalLM& model);

}  // namespace ld::infer::detail
