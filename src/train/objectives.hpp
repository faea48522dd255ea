#pragma once
// What pretraining minimises.
//
// Causal LM (GPT-2, the LLaMA family): the mean next-token cross-entropy of a loader batch's inputs
// against its targets, plus, for MoE models (Mixtral, MoE GPT-2), LmOutput.aux_loss, the routers'
// weighted auxiliary loss (router_aux_loss_coef * load balancing + router_z_loss_coef * z-loss),
// as transformers' MixtralForCausalLM adds it to its loss.
//
// Masked LM (BERT): Devlin et al.'s masking as transformers' DataCollatorForLanguageModeling does it.
// Each token is chosen with probability p (train.mlm_probability, 0.15); of the chosen, 80% become
// the mask id, 10% a uniformly random id of the vocabulary, 10% stay as they are; the labels are the
// original ids at chosen positions and -100 (ignored) elsewhere. Special ids (the dataset's EOS,
// which separates documents) are never chosen. The loss is the mean cross-entropy over the chosen
// positions (0, not nan, for a batch where none was chosen).
//
// Masking draws are Philox-4x32 (core/rng.hpp): token j of stream s uses philox(seed, s, j), whose
// first word decides "chosen", the second the 80/10/10 branch and the third the random id. The
// trainer numbers its micro-batches as streams, so a resumed run masks exactly as an uninterrupted
// one, on any machine and thread count.
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace ld::models {
class CausalLM;
class BertForMaskedLM;
}  // namespace ld::models

namespace ld::train {

struct LossParts {
  Tensor loss;         // scalar to call backward on: lm_loss (+ aux_loss)
  Tensor lm_loss;      // scalar: mean cross-entropy over the scored tokens
  Tensor aux_loss;     // scalar: the MoE routers' weighted auxiliary loss; undefined for dense models
  int64_t tokens = 0;  // scored tokens (targets, or masked positions)
};

// inputs, targets i64 [B, T] (data::Batch).
LossParts clm_loss(const models::CausalLM& model, const Tensor& inputs, const Tensor& targets);

inline constexpr int64_t kIgnoreLabel = -100;

struct MlmMasking {
  double probability = 0.15;
  int64_t mask_token_id = -1;
  int64_t vocab_size = 0;  // random replacements are drawn from [0, vocab_size)
  uint64_t seed = 0;
  std::vector<int64_t> never_mask;  // special ids that are never chosen
};

struct MaskedBatch {
  Tensor inputs;  // i64 [B, T]: the ids after masking
  Tensor labels;  // i64 [B, T]: the original id where chosen, -100 elsewhere
};

// Checks the options (probability in (0, 1], mask id and vocabulary) and masks ids (i64 [B, T]).
// Token j of the batch draws Philox counter (stream, first_index + j): a data-parallel rank holding
// rows from r*B of the global batch passes first_index = r*B*T and masks as one process would.
MaskedBatch mask_tokens(const Tensor& ids, const MlmMasking& masking, uint64_t stream, int64_t first_index = 0);

LossParts mlm_loss(const models::BertForMaskedLM& model, const MaskedBatch& batch);

}  // namespace ld::train
