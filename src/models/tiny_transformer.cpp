#include "models/tiny_transformer.hpp"

#include <string>
#include <vector>

#include "core/rng.hpp"
#include "ops/ops.hpp"

namespace ld::models {

namespace {

bool is_gpt2(const StackConfig& c) { return c.kind == StackKind::gpt2; }

// --- parameter names (Hugging Face)

std::string layer_prefix(const StackConfig& c, int64_t i) {
  return (is_gpt2(c) ? "transformer.h." : "model.layers.") + std::to_string(i) + ".";
}
std::string attn_norm_name(const StackConfig& c, int64_t i) {
  return layer_prefix(c, i) + (is_gpt2(c) ? "ln_1" : "input_layernorm");
}
std::string mlp_norm_name(const StackConfig& c, int64_t i) {
  return layer_prefix(c, i) + (is_gpt2(c) ? "ln_2" : "post_attention_layernorm");
}
std::string final_norm_name(const StackConfig& c) { return is_gpt2(c) ? "transformer.ln_f" : "model.norm"; }

const Tensor& param(const Params& params, const std::string& name) {
  auto it = params.find(name);
  LD_CHECK(it != params.end(), "forward_logits: missing parameter '", name, "'");
  return it->second;
}

// --- init

class Initializer {
 public:
  Initializer(Generator& gen, const InitOptions& options) : gen_(gen), options_(options) {}

  void matrix(const std::string& name, const Shape& shape) {
    add(name, normal(shape, 0.0f, float(options_.std), &gen_));
  }
  void norm_weight(const std::string& name, int64_t n) {
    add(name, options_.norm_and_bias_jitter > 0 ? normal({n}, 1.0f, float(options_.norm_and_bias_jitter), &gen_)
                                                : ones({n}));
  }
  void bias(const std::string& name, int64_t n) {
    add(name, options_.norm_and_bias_jitter > 0 ? normal({n}, 0.0f, float(options_.norm_and_bias_jitter), &gen_)
                                                : zeros({n}));
  }
  void layernorm(const std::string& name, int64_t n) {
    norm_weight(name + ".weight", n);
    bias(name + ".bias", n);
  }
  // HF Conv1D: weight [in, out], y = x @ W + b
  void conv1d(const std::string& name, int64_t in, int64_t out) {
    matrix(name + ".weight", {in, out});
    bias(name + ".bias", out);
  }
  Params take() { return std::move(params_); }

 private:
  void add(const std::string& name, Tensor t) {
    t.set_requires_grad(true);
    params_.emplace(name, std::move(t));
  }
  Generator& gen_;
  const InitOptions& options_;
  Params params_;
};

void init_gpt2(const StackConfig& c, Initializer& init) {
  const int64_t C = c.n_embd;
  init.matrix("transformer.wte.weight", {c.vocab_size, C});
  init.matrix("transformer.wpe.weight", {c.n_positions, C});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = layer_prefix(c, i);
    init.layernorm(p + "ln_1", C);
    init.conv1d(p + "attn.c_attn", C, 3 * C);
    init.conv1d(p + "attn.c_proj", C, C);
    init.layernorm(p + "ln_2", C);
    init.conv1d(p + "mlp.c_fc", C, 4 * C);
    init.conv1d(p + "mlp.c_proj", 4 * C, C);
  }
  init.layernorm("transformer.ln_f", C);
}

void init_llama(const StackConfig& c, Initializer& init) {
  const int64_t C = c.n_embd, D = c.head_dim(), I = c.intermediate_size;
  init.matrix("model.embed_tokens.weight", {c.vocab_size, C});
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = layer_prefix(c, i);
    init.norm_weight(p + "input_layernorm.weight", C);
    // nn.Linear layout: weight [out, in]
    init.matrix(p + "self_attn.q_proj.weight", {c.n_head * D, C});
    init.matrix(p + "self_attn.k_proj.weight", {c.n_kv_head * D, C});
    init.matrix(p + "self_attn.v_proj.weight", {c.n_kv_head * D, C});
    init.matrix(p + "self_attn.o_proj.weight", {C, c.n_head * D});
    init.norm_weight(p + "post_attention_layernorm.weight", C);
    init.matrix(p + "mlp.gate_proj.weight", {I, C});
    init.matrix(p + "mlp.up_proj.weight", {I, C});
    init.matrix(p + "mlp.down_proj.weight", {C, I});
  }
  init.norm_weight("model.norm.weight", C);
  init.matrix("lm_head.weight", {c.vocab_size, C});
}

// --- forward pieces; x is [B, T, C] throughout

Tensor norm(const StackConfig& c, const Params& p, const std::string& name, const Tensor& x) {
  if (is_gpt2(c)) return ops::layernorm(x, param(p, name + ".weight"), param(p, name + ".bias"), c.norm_eps);
  return ops::rmsnorm(x, param(p, name + ".weight"), c.norm_eps);
}

// The pre-norm residual stream: the norm that follows each residual add is fused into it.
ops::ResidualNorm add_norm(const StackConfig& c, const Params& p, const std::string& name, const Tensor& delta,
                           const Tensor& residual) {
  if (is_gpt2(c))
    return ops::add_layernorm(delta, residual, param(p, name + ".weight"), param(p, name + ".bias"), c.norm_eps);
  return ops::add_rmsnorm(delta, residual, param(p, name + ".weight"), c.norm_eps);
}

// [B, T, H*D] -> [B, H, T, D], a view
Tensor split_heads(const Tensor& x, int64_t heads, int64_t head_dim) {
  return x.reshape({x.size(0), x.size(1), heads, head_dim}).permute({0, 2, 1, 3});
}
// [B, H, T, D] -> [B, T, H*D]
Tensor merge_heads(const Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

Tensor conv1d(const Params& p, const std::string& name, const Tensor& x) {
  return ops::add(ops::matmul(x, param(p, name + ".weight")), param(p, name + ".bias"));
}

Tensor gpt2_attention(const StackConfig& c, const Params& p, const std::string& prefix, const Tensor& x) {
  const int64_t C = c.n_embd;
  std::vector<Tensor> qkv = ops::split(conv1d(p, prefix + "attn.c_attn", x), {C, C, C}, -1);
  auto heads = [&](const Tensor& t) { return split_heads(t, c.n_head, c.head_dim()); };
  Tensor y = ops::attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]));
  return conv1d(p, prefix + "attn.c_proj", merge_heads(y));
}

Tensor gpt2_mlp(const Params& p, const std::string& prefix, const Tensor& x) {
  return conv1d(p, prefix + "mlp.c_proj", ops::gelu(conv1d(p, prefix + "mlp.c_fc", x), /*tanh_approximation=*/true));
}

Tensor llama_attention(const StackConfig& c, const Params& p, const std::string& prefix, const Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), D = c.head_dim();
  const Tensor positions = arange(T, DType::i64, x.device());
  const ops::RopeOptions rope{.theta = c.rope_theta, .rotary_dim = 0, .layout = RopeLayout::half};
  // rope wants [B, T, H, D]; attention wants [B, H, T, D]
  auto project = [&](const char* name, int64_t heads) {
    return ops::linear(x, param(p, prefix + "self_attn." + name + ".weight")).reshape({B, T, heads, D});
  };
  Tensor q = ops::rope(project("q_proj", c.n_head), positions, rope).permute({0, 2, 1, 3});
  Tensor k = ops::rope(project("k_proj", c.n_kv_head), positions, rope).permute({0, 2, 1, 3});
  Tensor v = project("v_proj", c.n_kv_head).permute({0, 2, 1, 3});
  Tensor y = ops::attention(q, k, v);
  return ops::linear(merge_heads(y), param(p, prefix + "self_attn.o_proj.weight"));
}

Tensor llama_mlp(const Params& p, const std::string& prefix, const Tensor& x) {
  Tensor gate = ops::linear(x, param(p, prefix + "mlp.gate_proj.weight"));
  Tensor up = ops::linear(x, param(p, prefix + "mlp.up_proj.weight"));
  return ops::linear(ops::swiglu(gate, up), param(p, prefix + "mlp.down_proj.weight"));
}

Tensor attention_block(const StackConfig& c, const Params& p, int64_t i, const Tensor& x) {
  return is_gpt2(c) ? gpt2_attention(c, p, layer_prefix(c, i), x) : llama_attention(c, p, layer_prefix(c, i), x);
}
Tensor mlp_block(const StackConfig& c, const Params& p, int64_t i, const Tensor& x) {
  return is_gpt2(c) ? gpt2_mlp(p, layer_prefix(c, i), x) : llama_mlp(p, layer_prefix(c, i), x);
}

Tensor embed(const StackConfig& c, const Params& p, const Tensor& ids) {
  if (!is_gpt2(c)) return ops::embedding(ids, param(p, "model.embed_tokens.weight"));
  Tensor tokens = ops::embedding(ids, param(p, "transformer.wte.weight"));
  Tensor positions = ops::embedding(arange(ids.size(1), DType::i64, ids.device()), param(p, "transformer.wpe.weight"));  // [T, C]
  return ops::add(tokens, positions);
}

Tensor lm_head(const StackConfig& c, const Params& p, const Tensor& x) {
  // GPT-2 ties the output projection to the token embedding
  return ops::linear(x, param(p, is_gpt2(c) ? "transformer.wte.weight" : "lm_head.weight"));
}

}  // namespace

void validate(const StackConfig& c) {
  LD_CHECK(c.n_layer >= 1 && c.n_head >= 1 && c.n_embd >= 1 && c.vocab_size >= 1,
           "stack config: n_layer=", c.n_layer, ", n_head=", c.n_head, ", n_embd=", c.n_embd,
           ", vocab_size=", c.vocab_size, " must all be positive");
  LD_CHECK(c.n_embd % c.n_head == 0, "stack config: n_head=", c.n_head, " does not divide n_embd=", c.n_embd);
  LD_CHECK(c.n_kv_head >= 1 && c.n_head % c.n_kv_head == 0, "stack config: n_kv_head=", c.n_kv_head,
           " does not divide n_head=", c.n_head);
  if (is_gpt2(c)) {
    LD_CHECK(c.n_kv_head == c.n_head, "stack config: GPT-2 has no grouped-query attention, but n_kv_head=",
             c.n_kv_head, " differs from n_head=", c.n_head);
    LD_CHECK(c.n_positions >= 1, "stack config: n_positions=", c.n_positions, " must be positive");
  } else {
    LD_CHECK(c.head_dim() % 2 == 0, "stack config: RoPE needs an even head dim, got n_embd/n_head=", c.head_dim());
    LD_CHECK(c.intermediate_size >= 1, "stack config: intermediate_size=", c.intermediate_size,
             " must be positive");
  }
}

Params init_params(const StackConfig& config, Generator& gen, const InitOptions& options) {
  validate(config);
  Initializer init(gen, options);
  if (is_gpt2(config))
    init_gpt2(config, init);
  else
    init_llama(config, init);
  return init.take();
}

Tensor forward_logits(const StackConfig& config, const Params& params, const Tensor& ids) {
  validate(config);
  LD_CHECK(ids.dim() == 2 && (ids.dtype() == DType::i64 || ids.dtype() == DType::i32),
           "forward_logits: ids must be i32/i64 [B, T], got ", dtype_name(ids.dtype()), " ", shape_str(ids.shape()));
  LD_CHECK(!is_gpt2(config) || ids.size(1) <= config.n_positions, "forward_logits: sequence length ", ids.size(1),
           " exceeds n_positions=", config.n_positions);

  Tensor residual = embed(config, params, ids);
  Tensor normed = norm(config, params, attn_norm_name(config, 0), residual);
  for (int64_t i = 0; i < config.n_layer; ++i) {
    ops::ResidualNorm mid = add_norm(config, params, mlp_norm_name(config, i),
                                     attention_block(config, params, i, normed), residual);
    const std::string next_norm =
        i + 1 < config.n_layer ? attn_norm_name(config, i + 1) : final_norm_name(config);
    ops::ResidualNorm out = add_norm(config, params, next_norm, mlp_block(config, params, i, mid.normed), mid.sum);
    residual = out.sum;
    normed = out.normed;
  }
  return lm_head(config, params, normed);
}

}  // namespace ld::models
