#include "dist/tp_pipeline_stage.hpp"

#include <utility>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "dist/pipeline_stage.hpp"
#include "dist/stage_transfer.hpp"

namespace ld::dist {

namespace {

// The share of the model that stage pp.rank() of pp.size() holds.
Gpt2Part part_of(const io::HfModelConfig& hf, const Communicator& pp) {
  const BlockRange blocks = stage_blocks(hf.stack.n_layer, pp.size(), pp.rank());
  return {blocks.first, blocks.end, pp.rank() == 0, pp.rank() == pp.size() - 1};
}

// rank 0's string on every rank of comm.
std::string broadcast_string(Communicator& comm, std::string s) {
  int64_t length = int64_t(s.size());
  comm.broadcast(&length, 1, ElemType::i64, 0);
  s.resize(size_t(length));
  if (length > 0) comm.broadcast(s.data(), length, ElemType::u8, 0);
  return s;
}

// The full tensor's shape from one of tp equal parts.
Shape full_shape(const Tensor& part, const TpShard& shard, int tp) {
  Shape shape = part.shape();
  if (!shard.replicated()) shape[size_t(shard.dim)] *= tp;
  return shape;
}

}  // namespace

TensorParallelGpt2Stage::TensorParallelGpt2Stage(const models::Gpt2LMHeadModel& model, Communicator& tp,
                                                 Communicator& pp)
    : pp_(&pp), model_(model, tp, part_of(model.hf_config(), pp)) {}

Tensor TensorParallelGpt2Stage::forward(const Tensor& ids, const Tensor& hidden) const {
  return model_.forward_part(ids, hidden);
}

Tensor TensorParallelGpt2Stage::loss(const Tensor& logits_part, const Tensor& targets) const {
  return model_.loss_from_logits(logits_part, targets);
}

void TensorParallelGpt2Stage::reduce_tied_gradients() {
  if (!has_tied_copy() || !(is_first() || is_last())) return;
  sum_tied_gradient(*pp_, is_first() ? model_.embedding_weight() : model_.head_weight(), is_first() ? stages() - 1 : 0);
}

bool TensorParallelGpt2Stage::counts_in_grad_norm(const std::string& name) const {
  if (has_tied_copy() && is_last() && name == "transformer.wte.weight") return false;
  return model_.comm().rank() == 0 || !model_.shard_of(name).replicated();
}

nn::StateDict TensorParallelGpt2Stage::gather_full(const NamedTensors& local) const {
  NamedTensors stage_full;
  for (const auto& [name, part] : local) stage_full.emplace_back(name, model_.gather_full(name, part));
  if (model_.comm().rank() != 0) return {};
  return gather_to_first_stage(*pp_, stage_full);
}

nn::StateDict TensorParallelGpt2Stage::gather_full_state_dict() const {
  nn::StateDict full = gather_full(named_parameters());
  if (!full.empty() && hf_config().tie_word_embeddings)
    full.emplace("lm_head.weight", full.at("transformer.wte.weight"));
  return full;
}

// tp rank 0 of each stage receives the stage's full tensors over its pipeline group, then hands them
// to the other tp ranks; an error there (a missing key) is passed on, so every rank fails alike.
NamedTensors TensorParallelGpt2Stage::scatter_full(const nn::StateDict& full) const {
  Communicator& tp = model_.comm();
  NamedTensors stage_full;
  for (const auto& [name, p] : named_parameters())
    stage_full.emplace_back(name, empty(full_shape(p, model_.shard_of(name), tp.size()), DType::f32));
  std::string error;
  if (tp.rank() == 0) {
    try {
      stage_full = scatter_from_first_stage(*pp_, full, std::move(stage_full));
    } catch (const Error& e) {
      error = e.what();
    }
  }
  error = broadcast_string(tp, error);
  LD_CHECK(error.empty(), error);
  autograd::NoGradGuard no_grad;
  NamedTensors out;
  for (auto& [name, t] : stage_full) {
    const Tensor whole = t.contiguous();
    tp.broadcast(whole.raw(), whole.numel(), ElemType::f32, 0);
    out.emplace_back(name, model_.shard_full(name, whole));
  }
  return out;
}

}  // namespace ld::dist
