#pragma once
// TensorParallelGpt2: this rank's part of a GPT-2 (models::Gpt2LMHeadModel, dense) split across a
// tensor-parallel group as Megatron-LM splits it:
//   attn.c_attn   column-parallel: q, k and v each split by heads (rank r holds heads
//                 [r H/tp, (r+1) H/tp) of each), so attention runs on local heads only
//   attn.c_proj   row-parallel: input rows of those heads; the partial outputs are all-reduced, then
//                 the (replicated) bias is added once
//   mlp.c_fc      column-parallel (columns [r I/tp, (r+1) I/tp)), GELU on the local columns
//   mlp.c_proj    row-parallel, bias added after the all-reduce
//   wte           vocabulary-parallel (rows [r V/tp, (r+1) V/tp)); the tied lm_head gives the logits
//                 of that vocabulary slice and the loss is the vocabulary-parallel cross-entropy
//                 (an untied lm_head.weight is split the same way)
//   wpe, ln_*     replicated: every rank holds them whole and computes the same full gradient
// Parameters keep their Hugging Face names (a shard is named as its full tensor), so the usual
// AdamW param groups apply, and shard_full / gather_full convert any tensor laid out like a
// parameter (the parameter, its gradient, AdamW's moments) between the full and this rank's layout.
// Every rank must hold the same full model when constructing (same seed, or the same checkpoint)
// and feed the same batches.
//
// A Gpt2Part restricts the model to one pipeline stage's share (TensorParallelGpt2Stage): a range of
// blocks, with the embeddings on the first stage and ln_f + the head on the last. A last stage
// without the embeddings holds its own copy of a tied wte's vocabulary rows, a parameter named
// "transformer.wte.weight" like the first stage's.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"
#include "dist/tp_shard.hpp"
#include "io/hf_config.hpp"
#include "nn/module.hpp"

namespace ld::models {
class Gpt2LMHeadModel;
}

namespace ld::dist {

struct Gpt2Part {
  int64_t first_block = 0, end_block = -1;  // blocks [first_block, end_block); -1: up to n_layer
  bool embeddings = true;                   // wte and wpe, ids in
  bool head = true;                         // ln_f and the LM head, this rank's logits out
};

class TensorParallelGpt2 {
 public:
  // From the full model (its parameters are copied, the model is not kept). comm is the
  // tensor-parallel group and must outlive this object and the graphs it builds.
  TensorParallelGpt2(const models::Gpt2LMHeadModel& full, Communicator& comm, Gpt2Part part = {});
  // From a full Hugging Face state dict (a checkpoint, normalised names), every parameter the part
  // holds present.
  TensorParallelGpt2(const io::HfModelConfig& config, const nn::StateDict& full, Communicator& comm,
                     Gpt2Part part = {});

  // Throws, naming the config key, unless the model can be split tp ways: dense gpt2, and tp divides
  // n_head, n_inner and vocab_size.
  static void check_splittable(const io::HfModelConfig& config, int tp);

  // This rank's parameters (leaves requiring grad) with their full tensors' names, in the full
  // model's order; a tied lm_head is not listed (it is transformer.wte.weight).
  const std::vector<std::pair<std::string, Tensor>>& named_parameters() const { return params_; }
  const io::HfModelConfig& config() const { return config_; }
  Communicator& comm() const { return *comm_; }
  const Gpt2Part& part() const { return part_; }
  // This rank's vocabulary rows of wte (first part) and of the LM head (last part; wte itself when
  // tied and both are held, else its own copy or lm_head.weight). Undefined where not held.
  const Tensor& embedding_weight() const { return wte_; }
  const Tensor& head_weight() const { return lm_head_; }

  // ids i32/i64 [B, T] (T <= n_positions, positions 0..T-1): this rank's vocabulary slice of the
  // logits, [B, T, V/tp].
  Tensor local_logits(const Tensor& ids) const;
  // The part's forward: hidden [B, T, C] (the residual stream, replicated; ignored by a part with
  // the embeddings) through its blocks; returns the stream [B, T, C], or with the head this rank's
  // logits [B, T, V/tp]. ids are checked on every part ([B, T], T <= n_positions).
  Tensor forward_part(const Tensor& ids, const Tensor& hidden) const;
  // Mean next-token cross-entropy of ids against targets [B, T] (ignore index -100), the same value
  // on every rank: train::clm_loss of the full model.
  Tensor loss(const Tensor& inputs, const Tensor& targets) const;
  // The same from this rank's logits (forward_part's output with the head).
  Tensor loss_from_logits(const Tensor& logits_part, const Tensor& targets) const;

  // The layout of the parameter `name` (an error for a name the model does not have).
  TpShard shard_of(const std::string& name) const;
  // Full tensor -> this rank's part, and back (gather: collective; every rank gets the full tensor).
  Tensor shard_full(const std::string& name, const Tensor& full) const;
  Tensor gather_full(const std::string& name, const Tensor& part) const;
  // Every parameter gathered, under the names Gpt2LMHeadModel::state_dict() uses (a tied
  // lm_head.weight included as an alias of transformer.wte.weight when the part holds both ends).
  // Collective.
  nn::StateDict gather_full_state_dict() const;

  // The L2 norm of the whole model's gradient (sharded parts summed over the ranks, replicated ones
  // counted once): what clipping the full model would see. Collective.
  double grad_norm() const;
  void zero_grad();

 private:
  struct Block {
    Tensor ln_1_w, ln_1_b, c_attn_w, c_attn_b, attn_proj_w, attn_proj_b;
    Tensor ln_2_w, ln_2_b, c_fc_w, c_fc_b, mlp_proj_w, mlp_proj_b;
  };

  void load_parts(const nn::StateDict& full);
  Block take_block(const nn::StateDict& full, int64_t index);
  Tensor take(const nn::StateDict& full, const std::string& name, const Shape& expected);
  Tensor run_block(const Block& b, const Tensor& x) const;
  Tensor attention(const Block& b, const Tensor& normed) const;
  Tensor mlp(const Block& b, const Tensor& normed) const;

  io::HfModelConfig config_;
  Communicator* comm_;
  Gpt2Part part_;
  bool tanh_gelu_ = true;  // activation_function: the tanh approximation (gelu_new) or erf (gelu)
  std::map<std::string, TpShard> shards_;
  std::vector<std::pair<std::string, Tensor>> params_;
  Tensor wte_, wpe_, ln_f_w_, ln_f_b_, lm_head_;
  std::vector<Block> blocks_;
};

}  // namespace ld::dist
