#include "infer/decode_weights.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "models/causal_lm.hpp"
#include "models/gpt2.hpp"
#include "models/llama.hpp"
#include "nn/conv1d.hpp"
#include "nn/layers.hpp"

namespace ld::infer::detail {

namespace {

// The fused step reads the parameters' memory directly: they must be contiguous f32 (or bf16 for
// the matrices and tables) on the CPU.
void check_tensor(const Tensor& t, const std::string& name, bool bf16_allowed) {
  LD_CHECK(t.defined(), "fused decode: ", name, " is undefined");
  LD_CHECK(t.device() == kCPU, "fused decode: ", name, " is on ", t.device().str(), ", not the CPU");
  LD_CHECK(t.dtype() == DType::f32 || (bf16_allowed && t.dtype() == DType::bf16), "fused decode: ", name, " is ",
           dtype_name(t.dtype()), bf16_allowed ? " (f32 or bf16 wanted)" : " (f32 wanted)");
  LD_CHECK(t.is_contiguous(), "fused decode: ", name, " is not contiguous");
}

const float* f32_or_null(const Tensor& t) { return t.dtype() == DType::f32 ? t.data<float>() : nullptr; }
const uint16_t* bf16_or_null(const Tensor& t) {
  return t.dtype() == DType::bf16 ? static_cast<const uint16_t*>(t.raw()) : nullptr;
}

template <typename Layer>
void check_no_adapters(const Layer& layer, const std::string& name) {
  LD_CHECK(layer.adapters().empty(), "fused decode: ", name, " has a projection adapter attached (e.g. LoRA)");
}

ProjectionWeights read(const nn::Linear& layer, const std::string& name) {
  check_no_adapters(layer, name);
  check_tensor(layer.weight, name + ".weight", true);
  if (layer.bias.defined()) check_tensor(layer.bias, name + ".bias", false);
  return {.f32 = f32_or_null(layer.weight), .bf16 = bf16_or_null(layer.weight),
          .bias = layer.bias.defined() ? layer.bias.data<float>() : nullptr, .in = layer.weight.size(1),
          .out = layer.weight.size(0), .w_kn = false};
}

ProjectionWeights read(const nn::Conv1D& layer, const std::string& name) {
  check_no_adapters(layer, name);
  check_tensor(layer.weight, name + ".weight", true);
  check_tensor(layer.bias, name + ".bias", false);
  return {.f32 = f32_or_null(layer.weight), .bf16 = bf16_or_null(layer.weight), .bias = layer.bias.data<float>(),
          .in = layer.weight.size(0), .out = layer.weight.size(1), .w_kn = true};
}

NormWeights read(const nn::LayerNorm& norm, const std::string& name) {
  check_tensor(norm.weight, name + ".weight", false);
  if (norm.bias.defined()) check_tensor(norm.bias, name + ".bias", false);
  return {.weight = norm.weight.data<float>(), .bias = norm.bias.defined() ? norm.bias.data<float>() : nullptr,
          .eps = float(norm.eps)};
}

NormWeights read(const nn::RMSNorm& norm, const std::string& name) {
  check_tensor(norm.weight, name + ".weight", false);
  return {.weight = norm.weight.data<float>(), .bias = nullptr, .eps = float(norm.eps)};
}

TableWeights read(const nn::Embedding& table, const std::string& name) {
  check_tensor(table.weight, name + ".weight", true);
  return {.f32 = f32_or_null(table.weight), .bf16 = bf16_or_null(table.weight), .rows = table.weight.size(0),
          .dim = table.weight.size(1)};
}

// As gpt2.cpp's uses_tanh_gelu (the model has already refused other names).
bool tanh_gelu(const std::string& act) { return act != "gelu"; }

ModelWeights read_gpt2(const models::Gpt2LMHeadModel& lm) {
  ModelWeights w;
  w.gpt2 = true;
  w.tanh_gelu = tanh_gelu(lm.hf_config().hidden_act);
  const models::Gpt2Model& t = *lm.transformer;
  w.token_embedding = read(*t.wte, "transformer.wte");
  w.position_embedding = read(*t.wpe, "transformer.wpe");
  for (int64_t i = 0; i < lm.config().n_layer; ++i) {
    const models::Gpt2Block& b = t.block(i);
    const std::string p = "transformer.h." + std::to_string(i) + ".";
    LD_CHECK(b.mlp != nullptr, "fused decode: ", p, "mlp is a Mixture of Experts");
    LayerWeights l;
    l.attn_norm = read(*b.ln_1, p + "ln_1");
    l.mlp_norm = read(*b.ln_2, p + "ln_2");
    l.qkv = read(*b.attn->c_attn, p + "attn.c_attn");
    l.o = read(*b.attn->c_proj, p + "attn.c_proj");
    l.up = read(*b.mlp->c_fc, p + "mlp.c_fc");
    l.down = read(*b.mlp->c_proj, p + "mlp.c_proj");
    w.layers.push_back(l);
  }
  w.final_norm = read(*t.ln_f, "transformer.ln_f");
  w.lm_head = read(*lm.lm_head, "lm_head");
  return w;
}

ModelWeights read_llama(const models::LlamaForCausalLM& lm) {
  ModelWeights w;
  w.sliding_window = lm.hf_config().sliding_window;
  w.rope_theta = lm.config().rope_theta;
  const models::LlamaModel& m = *lm.model;
  w.token_embedding = read(*m.embed_tokens, "model.embed_tokens");
  for (int64_t i = 0; i < lm.config().n_layer; ++i) {
    const models::LlamaDecoderLayer& l = m.layer(i);
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LD_CHECK(l.mlp != nullptr, "fused decode: ", p, "block_sparse_moe is a Mixture of Experts");
    const models::LlamaAttention& a = *l.self_attn;
    LayerWeights lw;
    lw.attn_norm = read(*l.input_layernorm, p + "input_layernorm");
    lw.mlp_norm = read(*l.post_attention_layernorm, p + "post_attention_layernorm");
    lw.q = read(*a.q_proj, p + "self_attn.q_proj");
    lw.k = read(*a.k_proj, p + "self_attn.k_proj");
    lw.v = read(*a.v_proj, p + "self_attn.v_proj");
    lw.o = read(*a.o_proj, p + "self_attn.o_proj");
    lw.up = read(*l.mlp->up_proj, p + "mlp.up_proj");
    lw.gate = read(*l.mlp->gate_proj, p + "mlp.gate_proj");
    lw.down = read(*l.mlp->down_proj, p + "mlp.down_proj");
    w.layers.push_back(lw);
  }
  w.final_norm = read(*m.norm, "model.norm");
  w.lm_head = read(*lm.lm_head, "lm_head");
  return w;
}

}  // namespace

ModelWeights read_weights(const models::CausalLM& model) {
  LD_CHECK(!model.prompt().defined(), "fused decode: the model has a prompt-tuning prefix (set_prompt)");
  ModelWeights w;
  if (const auto* gpt2 = dynamic_cast<const models::Gpt2LMHeadModel*>(&model))
    w = read_gpt2(*gpt2);
  else if (const auto* llama = dynamic_cast<const models::LlamaForCausalLM*>(&model))
    w = read_llama(*llama);
  else
    LD_FAIL("fused decode: model_type \"", model.hf_config().model_type, "\" is neither GPT-2 nor of the LLaMA family");
  const models::StackConfig& c = model.config();
  w.n_head = c.n_head, w.n_kv_head = c.n_kv_head, w.head_dim = c.head_dim(), w.n_embd = c.n_embd;
  w.hidden = c.intermediate_size, w.vocab = c.vocab_size, w.n_positions = c.n_positions;
  return w;
}

std::string unsupported_reason(const models::CausalLM& model) {
  try {
    read_weights(model);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace ld::infer::detail
