#include "train/objectives.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"

namespace ld::train {

LossParts clm_loss(const models::CausalLM& model, const Tensor& inputs, const Tensor& targets) {
  const models::LmLoss out = model.loss({.ids = inputs}, targets);
  LossParts parts;
  parts.lm_loss = out.lm_loss;
  parts.aux_loss = out.aux_loss;
  parts.loss = out.aux_loss.defined() ? ops::add(parts.lm_loss, out.aux_loss) : parts.lm_loss;
  parts.tokens = targets.numel();
  return parts;
}

namespace {

void check_masking(const MlmMasking& m) {
  LD_CHECK(m.probability > 0 && m.probability <= 1, "train.mlm_probability must be in (0, 1], got ", m.probability);
  LD_CHECK(m.vocab_size > 0, "masked LM: the vocabulary size must be positive, got ", m.vocab_size);
  LD_CHECK(m.mask_token_id >= 0 && m.mask_token_id < m.vocab_size, "masked LM: the mask token id ",
           m.mask_token_id, " is not in the vocabulary [0, ", m.vocab_size, ")");
}

}  // namespace

MaskedBatch mask_tokens(const Tensor& ids, const MlmMasking& m, uint64_t stream, int64_t first_index) {
  check_masking(m);
  LD_CHECK(ids.dtype() == DType::i64 && ids.dim() == 2, "masked LM: ids must be i64 [B, T], got ",
           dtype_name(ids.dtype()), " ", shape_str(ids.shape()));
  std::vector<int64_t> in = ids.to_vector<int64_t>();
  std::vector<int64_t> labels(in.size(), kIgnoreLabel);
  // Compared against 32-bit draws: "chosen" when word < p * 2^32.
  const double two32 = 4294967296.0;
  const uint64_t choose_below = uint64_t(std::min(m.probability * two32, two32));
  for (size_t j = 0; j < in.size(); ++j) {
    if (std::find(m.never_mask.begin(), m.never_mask.end(), in[j]) != m.never_mask.end()) continue;
    const std::array<uint32_t, 4> r = philox4x32(m.seed, stream, uint64_t(first_index) + j);
    if (uint64_t(r[0]) >= choose_below) continue;
    labels[j] = in[j];
    const float branch = uint_to_unit_float(r[1]);
    if (branch < 0.8f) {
      in[j] = m.mask_token_id;
    } else if (branch < 0.9f) {
      in[j] = int64_t((uint64_t(r[2]) * uint64_t(m.vocab_size)) >> 32);  // uniform in [0, V)
    }
  }
  return {from_vector(in, ids.shape()), from_vector(labels, ids.shape())};
}

LossParts mlm_loss(const models::BertForMaskedLM& model, const MaskedBatch& batch) {
  const Tensor logits = model.forward({.ids = batch.inputs, .attention_mask = Tensor(), .token_type_ids = Tensor()});
  const std::vector<int64_t> labels = batch.labels.to_vector<int64_t>();
  const int64_t chosen = std::count_if(labels.begin(), labels.end(), [](int64_t l) { return l != kIgnoreLabel; });
  LossParts parts;
  // sum / count rather than the mean, so a batch with nothing chosen gives 0 instead of 0 / 0.
  const Tensor sum = ops::cross_entropy(logits, batch.labels,
                                        {.ignore_index = kIgnoreLabel,
                                         .label_smoothing = 0.0,
                                         .reduction = ops::CrossEntropyOptions::Reduction::sum});
  parts.lm_loss = ops::scale(sum, 1.0 / double(std::max<int64_t>(chosen, 1)));
  parts.loss = parts.lm_loss;
  parts.tokens = chosen;
  return parts;
}

}  // namespace ld::train
