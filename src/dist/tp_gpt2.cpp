#include "dist/tp_gpt2.hpp"

#include <cmath>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "dist/tensor_parallel_ops.hpp"
#include "models/gpt2.hpp"
#include "ops/ops.hpp"

namespace ld::dist {

namespace {

bool ends_with(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Megatron's split of each GPT-2 parameter (see tp_gpt2.hpp); everything else is replicated.
TpShard layout_of(const std::string& name) {
  if (ends_with(name, ".attn.c_attn.weight")) return {1, 3};  // [C, 3C]: q | k | v, each by heads
  if (ends_with(name, ".attn.c_attn.bias")) return {0, 3};
  if (ends_with(name, ".attn.c_proj.weight")) return {0, 1};  // row-parallel: input rows
  if (ends_with(name, ".mlp.c_fc.weight")) return {1, 1};     // column-parallel
  if (ends_with(name, ".mlp.c_fc.bias")) return {0, 1};
  if (ends_with(name, ".mlp.c_proj.weight")) return {0, 1};
  if (name == "transformer.wte.weight" || name == "lm_head.weight") return {0, 1};  // vocabulary rows
  return {};
}

// GPT-2's activation_function as models::Gpt2Mlp reads it: true for the tanh approximation.
bool uses_tanh_gelu(const std::string& act) {
  if (act.empty() || act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return true;
  LD_CHECK(act == "gelu", "TensorParallelGpt2: activation_function \"", act, "\" is not supported");
  return false;
}

void check_divides(int64_t value, int tp, const char* key) {
  LD_CHECK(value % tp == 0, "TensorParallelGpt2: ", key, "=", value, " is not divisible by the tensor-parallel size ",
           tp);
}

void check_ids_in_vocabulary(const Tensor& ids, int64_t vocab_size) {
  LD_CHECK(ids.dtype() == DType::i64 || ids.dtype() == DType::i32, "TensorParallelGpt2: ids must be i32 or i64, got ",
           dtype_name(ids.dtype()));
  const std::vector<int64_t> values = ids.to(kCPU).to(DType::i64).contiguous().to_vector<int64_t>();
  for (size_t i = 0; i < values.size(); ++i)
    LD_CHECK(values[i] >= 0 && values[i] < vocab_size, "TensorParallelGpt2: id ", values[i], " at flat position ", i,
             " is outside the vocabulary [0, ", vocab_size, ")");
}

// [B, T, H*D] -> [B, H, T, D] and back.
Tensor split_heads(const Tensor& x, int64_t heads) {
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).permute({0, 2, 1, 3});
}
Tensor merge_heads(const Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}

// x [B, T, in] @ w [in, out] (+ b) -> [B, T, out], as nn::Conv1D computes it.
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor()) {
  Tensor y = ops::matmul(x.reshape({-1, w.size(0)}), w);
  if (b.defined()) y = ops::add(y, b);
  return y.reshape({x.size(0), x.size(1), w.size(1)});
}

}  // namespace

void TensorParallelGpt2::check_splittable(const io::HfModelConfig& hf, int tp) {
  LD_CHECK(hf.model_type == "gpt2" && hf.stack.kind == models::StackKind::gpt2, "TensorParallelGpt2: model_type \"",
           hf.model_type, "\" is not gpt2");
  LD_CHECK(!hf.moe.enabled(), "TensorParallelGpt2: num_local_experts: MoE GPT-2 is not supported (dense only)");
  LD_CHECK(tp >= 1, "TensorParallelGpt2: the tensor-parallel size must be positive, got ", tp);
  check_divides(hf.stack.n_head, tp, "n_head");
  check_divides(hf.stack.intermediate_size, tp, "n_inner");
  check_divides(hf.stack.vocab_size, tp, "vocab_size");
}

TensorParallelGpt2::TensorParallelGpt2(const models::Gpt2LMHeadModel& full, Communicator& comm, Gpt2Part part)
    : TensorParallelGpt2(full.hf_config(), full.state_dict(), comm, part) {}

TensorParallelGpt2::TensorParallelGpt2(const io::HfModelConfig& config, const nn::StateDict& full, Communicator& comm,
                                       Gpt2Part part)
    : config_(config), comm_(&comm), part_(part) {
  check_splittable(config_, comm.size());
  if (part_.end_block < 0) part_.end_block = config_.stack.n_layer;
  LD_CHECK(0 <= part_.first_block && part_.first_block <= part_.end_block && part_.end_block <= config_.stack.n_layer,
           "TensorParallelGpt2: blocks [", part_.first_block, ", ", part_.end_block, ") are not within n_layer=",
           config_.stack.n_layer);
  tanh_gelu_ = uses_tanh_gelu(config_.hidden_act);
  load_parts(full);
}

// This rank's part of the full tensor `name`, registered as a parameter (after checking its shape).
Tensor TensorParallelGpt2::take(const nn::StateDict& full, const std::string& name, const Shape& expected) {
  const auto it = full.find(name);
  LD_CHECK(it != full.end(), "TensorParallelGpt2: the state dict has no \"", name, "\"");
  LD_CHECK(it->second.shape() == expected, "TensorParallelGpt2: \"", name, "\" is ", shape_str(it->second.shape()),
           ", expected ", shape_str(expected), " for this config");
  shards_[name] = layout_of(name);
  Tensor part = shard_tensor(it->second.to(DType::f32), shards_[name], *comm_, name);
  part.set_requires_grad(true);
  params_.emplace_back(name, part);
  return part;
}

TensorParallelGpt2::Block TensorParallelGpt2::take_block(const nn::StateDict& full, int64_t index) {
  const int64_t C = config_.stack.n_embd, I = config_.stack.intermediate_size;
  const std::string p = "transformer.h." + std::to_string(index) + ".";
  Block b;
  b.ln_1_w = take(full, p + "ln_1.weight", {C});
  b.ln_1_b = take(full, p + "ln_1.bias", {C});
  b.c_attn_w = take(full, p + "attn.c_attn.weight", {C, 3 * C});
  b.c_attn_b = take(full, p + "attn.c_attn.bias", {3 * C});
  b.attn_proj_w = take(full, p + "attn.c_proj.weight", {C, C});
  b.attn_proj_b = take(full, p + "attn.c_proj.bias", {C});
  b.ln_2_w = take(full, p + "ln_2.weight", {C});
  b.ln_2_b = take(full, p + "ln_2.bias", {C});
  b.c_fc_w = take(full, p + "mlp.c_fc.weight", {C, I});
  b.c_fc_b = take(full, p + "mlp.c_fc.bias", {I});
  b.mlp_proj_w = take(full, p + "mlp.c_proj.weight", {I, C});
  b.mlp_proj_b = take(full, p + "mlp.c_proj.bias", {C});
  return b;
}

// In the full model's parameter order.
void TensorParallelGpt2::load_parts(const nn::StateDict& full) {
  const models::StackConfig& c = config_.stack;
  const Shape vocab_rows = {c.vocab_size, c.n_embd};
  if (part_.embeddings) {
    wte_ = take(full, "transformer.wte.weight", vocab_rows);
    wpe_ = take(full, "transformer.wpe.weight", {c.n_positions, c.n_embd});
  }
  for (int64_t i = part_.first_block; i < part_.end_block; ++i) blocks_.push_back(take_block(full, i));
  if (!part_.head) return;
  ln_f_w_ = take(full, "transformer.ln_f.weight", {c.n_embd});
  ln_f_b_ = take(full, "transformer.ln_f.bias", {c.n_embd});
  if (!config_.tie_word_embeddings)
    lm_head_ = take(full, "lm_head.weight", vocab_rows);
  else  // tied: wte itself, or this part's own copy of its rows
    lm_head_ = part_.embeddings ? wte_ : take(full, "transformer.wte.weight", vocab_rows);
}

// --- forward

Tensor TensorParallelGpt2::attention(const Block& b, const Tensor& normed) const {
  const int64_t local_width = b.c_attn_w.size(1) / 3;  // this rank's heads of q (and of k, of v)
  const int64_t local_heads = config_.stack.n_head / comm_->size();
  const std::vector<Tensor> qkv = ops::split(conv1d(copy_to_tp(normed, *comm_), b.c_attn_w, b.c_attn_b),
                                             {local_width, local_width, local_width}, -1);
  const Tensor y = ops::attention(split_heads(qkv[0], local_heads), split_heads(qkv[1], local_heads),
                                  split_heads(qkv[2], local_heads));  // causal, 1/sqrt(head_dim)
  // Each rank's heads give a partial sum of c_proj's output; the bias joins once, after the sum.
  return ops::add(reduce_from_tp(conv1d(merge_heads(y), b.attn_proj_w), *comm_), b.attn_proj_b);
}

Tensor TensorParallelGpt2::mlp(const Block& b, const Tensor& normed) const {
  const Tensor hidden = ops::gelu(conv1d(copy_to_tp(normed, *comm_), b.c_fc_w, b.c_fc_b), tanh_gelu_);
  return ops::add(reduce_from_tp(conv1d(hidden, b.mlp_proj_w), *comm_), b.mlp_proj_b);
}

Tensor TensorParallelGpt2::run_block(const Block& b, const Tensor& x) const {
  const double eps = config_.stack.norm_eps;
  const Tensor mid = ops::add(x, attention(b, ops::layernorm(x, b.ln_1_w, b.ln_1_b, eps)));
  return ops::add(mid, mlp(b, ops::layernorm(mid, b.ln_2_w, b.ln_2_b, eps)));
}

Tensor TensorParallelGpt2::forward_part(const Tensor& ids, const Tensor& hidden) const {
  LD_CHECK(ids.defined() && ids.dim() == 2, "TensorParallelGpt2: ids must be [B, T], got ",
           ids.defined() ? shape_str(ids.shape()) : "undefined");
  const int64_t T = ids.size(1);
  LD_CHECK(T >= 1 && T <= config_.stack.n_positions, "TensorParallelGpt2: ", T,
           " tokens do not fit n_positions=", config_.stack.n_positions);
  Tensor x;
  if (part_.embeddings) {
    x = ops::add(vocab_parallel_embedding(ids, wte_, *comm_),
                 ops::embedding(arange(T, DType::i64, wpe_.device()), wpe_));  // [B, T, C] + [T, C]
  } else {
    check_ids_in_vocabulary(ids, config_.stack.vocab_size);  // as the first stage does, so every stage fails alike
    const Shape expected = {ids.size(0), T, config_.stack.n_embd};
    LD_CHECK(hidden.defined() && hidden.shape() == expected, "TensorParallelGpt2: blocks from ", part_.first_block,
             " need hidden states ", shape_str(expected), ", got ",
             hidden.defined() ? shape_str(hidden.shape()) : "none");
    x = hidden;
  }
  for (const Block& b : blocks_) x = run_block(b, x);
  if (!part_.head) return x;
  const Tensor h = ops::layernorm(x, ln_f_w_, ln_f_b_, config_.stack.norm_eps);
  return ops::linear(copy_to_tp(h, *comm_), lm_head_);  // [B, T, V/tp]: this rank's vocabulary slice
}

Tensor TensorParallelGpt2::local_logits(const Tensor& ids) const {
  LD_ASSERT(part_.embeddings && part_.head, "local_logits needs the whole model (forward_part runs a part)");
  return forward_part(ids, Tensor());
}

Tensor TensorParallelGpt2::loss(const Tensor& inputs, const Tensor& targets) const {
  return loss_from_logits(local_logits(inputs), targets);
}

Tensor TensorParallelGpt2::loss_from_logits(const Tensor& logits_part, const Tensor& targets) const {
  return vocab_parallel_cross_entropy(logits_part, targets, *comm_);
}

// --- layouts, gathering, gradients

TpShard TensorParallelGpt2::shard_of(const std::string& name) const {
  const auto it = shards_.find(name);
  LD_CHECK(it != shards_.end(), "TensorParallelGpt2: no parameter \"", name, "\"");
  return it->second;
}

Tensor TensorParallelGpt2::shard_full(const std::string& name, const Tensor& full) const {
  return shard_tensor(full, shard_of(name), *comm_, name);
}

Tensor TensorParallelGpt2::gather_full(const std::string& name, const Tensor& part) const {
  return gather_tensor(part, shard_of(name), *comm_, name);
}

nn::StateDict TensorParallelGpt2::gather_full_state_dict() const {
  nn::StateDict out;
  for (const auto& [name, part] : params_) out[name] = gather_full(name, part);
  if (config_.tie_word_embeddings && part_.embeddings && part_.head)
    out["lm_head.weight"] = out.at("transformer.wte.weight");
  return out;
}

double TensorParallelGpt2::grad_norm() const {
  double sharded = 0, replicated = 0;
  for (const auto& [name, part] : params_) {
    if (!part.grad().defined()) continue;
    double sq = 0;
    for (float g : part.grad().contiguous().to_vector<float>()) sq += double(g) * double(g);
    (shard_of(name).replicated() ? replicated : sharded) += sq;
  }
  return std::sqrt(comm_->all_reduce_sum(sharded) + replicated);
}

void TensorParallelGpt2::zero_grad() {
  for (auto& [name, part] : params_) part.zero_grad();
}

}  // namespace ld::dist
