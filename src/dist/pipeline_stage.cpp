#include "dist/pipeline_stage.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "dist/stage_transfer.hpp"
#include "ops/ops.hpp"

namespace ld::dist {

namespace {

void append_module(NamedTensors& out, const std::string& prefix, const nn::Module& module) {
  for (auto& [name, t] : module.named_parameters()) out.emplace_back(prefix + name, t);
}

// The last stage's own copy of the tied embedding: a leaf with wte's values.
Tensor copy_of(const Tensor& weight) {
  Tensor copy = weight.detach().clone();
  copy.set_requires_grad(weight.requires_grad());
  return copy;
}

}  // namespace

BlockRange stage_blocks(int64_t n_layer, int stages, int stage) {
  LD_CHECK(stages >= 1 && stage >= 0 && stage < stages, "pipeline: stage ", stage, " of ", stages, " does not exist");
  LD_CHECK(stages <= n_layer, "pipeline: ", stages, " stages need at least as many layers, but the model has n_layer=",
           n_layer);
  const int64_t base = n_layer / stages, extra = n_layer % stages;
  const int64_t first = stage * base + std::min<int64_t>(stage, extra);
  return {first, first + base + (stage < extra ? 1 : 0)};
}

PipelineGpt2Stage::PipelineGpt2Stage(const models::Gpt2LMHeadModel& model, Communicator& comm)
    : comm_(&comm), hf_(model.hf_config()) {
  LD_CHECK(!hf_.moe.enabled(), "pipeline parallel: only dense GPT-2 is supported (this one has ",
           hf_.moe.num_experts, " experts per layer)");
  blocks_ = stage_blocks(hf_.stack.n_layer, stages(), stage());
  const models::Gpt2Model& t = *model.transformer;
  if (is_first()) {
    wte_ = t.wte;
    wpe_ = t.wpe;
  }
  for (int64_t i = blocks_.first; i < blocks_.end; ++i) blocks_h_.push_back(t.h->at<models::Gpt2Block>(size_t(i)));
  if (is_last()) {
    ln_f_ = t.ln_f;
    head_weight_ = has_tied_copy() ? copy_of(t.wte->weight) : model.lm_head->weight;
  }
  activation_dtype_ = blocks_h_.front()->ln_1->weight.dtype();
}

Tensor PipelineGpt2Stage::forward(const Tensor& ids, const Tensor& hidden) const {
  models::LmInputs in;
  in.ids = ids;
  // Checks the ids (vocabulary, n_positions) and gives positions 0..T-1, as the full model's run.
  const models::AttentionContext ctx = models::make_attention_context(in, hf_.stack, /*sliding_window=*/0, Tensor());
  if (!is_first()) {
    const Shape expected = {ids.size(0), ids.size(1), hf_.stack.n_embd};
    LD_CHECK(hidden.defined() && hidden.shape() == expected, "pipeline stage ", stage(), ": the hidden states must be ",
             shape_str(expected), ", got ", hidden.defined() ? shape_str(hidden.shape()) : "none");
  }
  const Tensor out = run_blocks(is_first() ? embed(ids, ctx) : hidden, ctx);
  return out;
}

Tensor PipelineGpt2Stage::loss(const Tensor& hidden, const Tensor& targets) const {
  return ops::linear_cross_entropy(hidden, head_weight_, Tensor(), targets);
}

Tensor PipelineGpt2Stage::embed(const Tensor& ids, const models::AttentionContext& ctx) const {
  return ops::add(wte_->forward(ids), wpe_->forward(ctx.positions));
}

// Gpt2LMHeadModel::run's blocks: each LayerNorm fused into the residual add before it, except at the
// end of a stage that is not the last, where the stream leaves unnormalised (the next stage's first
// ln_1 normalises it).
Tensor PipelineGpt2Stage::run_blocks(const Tensor& input, const models::AttentionContext& ctx) const {
  Tensor residual = input;
  Tensor normed = blocks_h_.front()->ln_1->forward(residual);
  const size_t n = blocks_h_.size();
  for (size_t j = 0; j < n; ++j) {
    const models::Gpt2Block& block = *blocks_h_[j];
    const nn::LayerNorm& ln_2 = *block.ln_2;
    const Tensor attn = block.attn->forward(normed, ctx, nullptr, blocks_.first + int64_t(j));
    const ops::ResidualNorm mid = ops::add_layernorm(attn, residual, ln_2.weight, ln_2.bias, ln_2.eps);
    const Tensor ffn = block.mlp->forward(mid.normed);
    const nn::LayerNorm* next = j + 1 < n ? blocks_h_[j + 1]->ln_1.get() : (is_last() ? ln_f_.get() : nullptr);
    if (next == nullptr) return ops::add(ffn, mid.sum);
    const ops::ResidualNorm end = ops::add_layernorm(ffn, mid.sum, next->weight, next->bias, next->eps);
    residual = end.sum;
    normed = end.normed;
  }
  return normed;
}

NamedTensors PipelineGpt2Stage::named_parameters() const {
  NamedTensors out;
  if (is_first()) {
    append_module(out, "transformer.wte.", *wte_);
    append_module(out, "transformer.wpe.", *wpe_);
  }
  for (size_t j = 0; j < blocks_h_.size(); ++j)
    append_module(out, "transformer.h." + std::to_string(blocks_.first + int64_t(j)) + ".", *blocks_h_[j]);
  if (is_last()) {
    append_module(out, "transformer.ln_f.", *ln_f_);
    if (has_tied_copy()) out.emplace_back("transformer.wte.weight", head_weight_);
    if (!hf_.tie_word_embeddings) out.emplace_back("lm_head.weight", head_weight_);
  }
  return out;
}

bool PipelineGpt2Stage::counts_in_grad_norm(const std::string& name) const {
  return !(has_tied_copy() && is_last() && name == "transformer.wte.weight");
}

void PipelineGpt2Stage::reduce_tied_gradients() {
  if (!has_tied_copy() || !(is_first() || is_last())) return;
  sum_tied_gradient(*comm_, is_first() ? wte_->weight : head_weight_, is_first() ? stages() - 1 : 0);
}

nn::StateDict PipelineGpt2Stage::gather_full(const NamedTensors& local) const {
  return gather_to_first_stage(*comm_, local);
}

nn::StateDict PipelineGpt2Stage::gather_full_state_dict() const {
  nn::StateDict full = gather_full(named_parameters());
  if (comm_->rank() == 0 && hf_.tie_word_embeddings) full.emplace("lm_head.weight", full.at("transformer.wte.weight"));
  return full;
}

NamedTensors PipelineGpt2Stage::scatter_full(const nn::StateDict& full) const {
  return scatter_from_first_stage(*comm_, full, named_parameters());
}

void PipelineGpt2Stage::load_full_state_dict(const nn::StateDict& full) {
  const NamedTensors values = scatter_full(full);
  NamedTensors params = named_parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].second.copy_(values[i].second);
}

}  // namespace ld::dist
