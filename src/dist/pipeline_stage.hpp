#pragma once
// Pipeline parallelism for GPT-2: this rank's stage of a Gpt2LMHeadModel cut into comm.size()
// contiguous ranges of blocks, balanced by count (the earlier stages take the extra blocks when the
// count does not divide). Stage 0 also holds wte and wpe, the last stage ln_f and the LM head.
//
// A tied LM head is wte. With one stage it is the very same tensor, as in the full model; with more
// the last stage keeps its own copy of wte, and the two copies' gradients are summed between the
// first and the last stage before the optimizer step (reduce_tied_gradients, Megatron's embedding
// group), so that an elementwise optimizer keeps them equal. Both copies are named
// "transformer.wte.weight", so parameter groups built from names treat them alike.
//
// The stage runs the full model's own modules (the parameters are the model's tensors, shared: the
// caller may drop the model, the stage keeps its part alive) on the training path of
// Gpt2LMHeadModel::run: no KV cache, no attention mask, positions 0..T-1. Dense GPT-2 only.
//
// Checkpoints stay full Hugging Face state dicts: gather_full / gather_full_state_dict bring every
// stage's tensors to rank 0, scatter_full hands each stage its part of a full dict held on rank 0.
// Transfers go through host memory (CPU tensors).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"
#include "dist/pipeline_stage_interface.hpp"
#include "models/gpt2.hpp"
#include "nn/module.hpp"

namespace ld::dist {

// Blocks [first, end) of `stage` when n_layer blocks are cut into `stages` contiguous ranges whose
// sizes differ by at most one. More stages than blocks is an error naming both counts.
struct BlockRange {
  int64_t first = 0, end = 0;
};
BlockRange stage_blocks(int64_t n_layer, int stages, int stage);

class PipelineGpt2Stage : public PipelineStage {
 public:
  // model: the full model, identical on every rank (same seed or the same checkpoint). comm: the
  // pipeline's ranks, stage i on rank i; it must outlive the stage.
  PipelineGpt2Stage(const models::Gpt2LMHeadModel& model, Communicator& comm);

  BlockRange blocks() const { return blocks_; }
  Communicator& communicator() const override { return *comm_; }
  const io::HfModelConfig& hf_config() const override { return hf_; }
  // The dtype of the activations passed between stages (the parameters').
  DType activation_dtype() const override { return activation_dtype_; }

  // ids i32/i64 [B, T] (every stage checks them against the vocabulary and n_positions; the first
  // embeds them). hidden [B, T, C]: the previous stage's output, ignored by the first stage.
  // Returns the residual stream [B, T, C] after this stage's blocks, or on the last stage the
  // final norm's output [B, T, C], which the head reads.
  Tensor forward(const Tensor& ids, const Tensor& hidden) const override;
  // The micro-batch's loss on the last stage: the mean next-token cross-entropy, as clm_loss (the
  // head and the loss as one op, ops::linear_cross_entropy: the logits are never held whole).
  Tensor loss(const Tensor& hidden, const Tensor& targets) const override;

  // This stage's parameters with their Hugging Face names, in the full model's order.
  NamedTensors named_parameters() const override;
  // Every parameter but the last stage's copy of a tied wte (its gradient is the first stage's).
  bool counts_in_grad_norm(const std::string& name) const override;
  // Sums the gradients of the tied wte copies of the first and the last stage (a no-op otherwise).
  // Call once per optimizer step, after the step's last backward: it adds the other copy's
  // gradient, so a second call would count it twice.
  void reduce_tied_gradients() override;

  // Every stage's tensors, laid out like its named_parameters() (the parameters, their gradients,
  // an optimizer's moments), brought to rank 0 under their names; a name that several stages hold
  // (the tied wte) is taken from the lowest stage. Collective; the result is empty on other ranks.
  nn::StateDict gather_full(const NamedTensors& local) const override;
  // The full model's state_dict() on rank 0 (aliases included: a tied "lm_head.weight" is wte);
  // empty elsewhere. Collective.
  nn::StateDict gather_full_state_dict() const override;
  // This stage's part of `full` (read on rank 0 only; other ranks may pass {}), in named_parameters()
  // order, on every rank. A missing name or a wrong shape is an error on rank 0 naming the key.
  // Collective.
  NamedTensors scatter_full(const nn::StateDict& full) const override;
  // Copies this stage's part of the full state dict on rank 0 into the parameters. Collective.
  void load_full_state_dict(const nn::StateDict& full);

 private:
  Tensor embed(const Tensor& ids, const models::AttentionContext& ctx) const;
  Tensor run_blocks(const Tensor& residual, const models::AttentionContext& ctx) const;
  bool has_tied_copy() const { return hf_.tie_word_embeddings && stages() > 1; }

  Communicator* comm_;
  io::HfModelConfig hf_;
  BlockRange blocks_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;                 // first stage
  std::vector<std::shared_ptr<models::Gpt2Block>> blocks_h_;  // blocks_.first .. end-1
  std::shared_ptr<nn::LayerNorm> ln_f_;                      // last stage
  Tensor head_weight_;                                       // last stage: [V, C]
  DType activation_dtype_ = DType::f32;
};

}  // namespace ld::dist
