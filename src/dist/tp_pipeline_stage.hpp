#pragma once
// TensorParallelGpt2Stage: one pipeline stage of a GPT-2 whose blocks are split over a tensor-
// parallel group (the dp x tp x pp grid with tp and pp both above 1, as Megatron-LM runs it). The
// stage holds the blocks stage_blocks() gives it as a TensorParallelGpt2 part: the first stage also
// the vocabulary-parallel wte and wpe, the last ln_f, the vocabulary-parallel head and its loss.
//
// Activations between stages are the whole residual stream, the same on every rank of a tensor-
// parallel group, so tp rank r sends to and receives from tp rank r of the neighbouring stages over
// its own pipeline group. A tied LM head on the last stage is its own copy of wte's vocabulary rows
// of the same tp rank; the two copies' gradients are summed over that pipeline group.
//
// Checkpoints stay full Hugging Face state dicts: gathering goes over the tensor-parallel group
// first (each stage's tp rank 0 then holds the stage's full tensors), then over tp rank 0's
// pipeline group to the first stage, i.e. the grid's rank (dp_rank, tp 0, pp 0). Scattering runs the
// other way round.
#include <string>

#include "dist/communicator.hpp"
#include "dist/pipeline_stage_interface.hpp"
#include "dist/tp_gpt2.hpp"
#include "models/gpt2.hpp"

namespace ld::dist {

class TensorParallelGpt2Stage : public PipelineStage {
 public:
  // model: the full model, the same on every rank. tp: this stage's tensor-parallel group; pp: the
  // pipeline group of this tp rank (stage i is its rank i). Both must outlive the stage. Errors name
  // the config key (tp must divide n_head, n_inner, vocab_size; no more stages than n_layer).
  TensorParallelGpt2Stage(const models::Gpt2LMHeadModel& model, Communicator& tp, Communicator& pp);

  Communicator& communicator() const override { return *pp_; }
  const io::HfModelConfig& hf_config() const override { return model_.config(); }
  DType activation_dtype() const override { return DType::f32; }  // TensorParallelGpt2 runs f32
  const TensorParallelGpt2& tensor_parallel() const { return model_; }

  // Returns the residual stream, or on the last stage this rank's logits [B, T, V/tp].
  Tensor forward(const Tensor& ids, const Tensor& hidden) const override;
  // The vocabulary-parallel cross-entropy: the same value on every tp rank.
  Tensor loss(const Tensor& logits_part, const Tensor& targets) const override;

  NamedTensors named_parameters() const override { return model_.named_parameters(); }
  void reduce_tied_gradients() override;
  // Sharded parameters count on every tp rank, replicated ones on tp rank 0; the last stage's copy
  // of a tied wte on none.
  bool counts_in_grad_norm(const std::string& name) const override;

  nn::StateDict gather_full(const NamedTensors& local) const override;
  nn::StateDict gather_full_state_dict() const override;
  NamedTensors scatter_full(const nn::StateDict& full) const override;

 private:
  bool has_tied_copy() const { return hf_config().tie_word_embeddings && stages() > 1; }

  Communicator* pp_;
  TensorParallelGpt2 model_;
};

}  // namespace ld::dist
