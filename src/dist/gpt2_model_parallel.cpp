#include "dist/gpt2_model_parallel.hpp"

#include "core/error.hpp"
#include "dist/pipeline_stage.hpp"
#include "dist/tp_pipeline_stage.hpp"
#include "models/gpt2.hpp"

namespace ld::dist {

namespace {

const models::Gpt2LMHeadModel& as_gpt2(const models::CausalLM& full) {
  const auto* gpt2 = dynamic_cast<const models::Gpt2LMHeadModel*>(&full);
  LD_CHECK(gpt2 != nullptr && !full.hf_config().moe.enabled(), "dist.tp / dist.pp: tensor and pipeline parallel ",
           "split dense GPT-2 models; this model is ", full.hf_config().model_type,
           full.hf_config().moe.enabled() ? " with experts" : "", " (data parallel trains any model)");
  return *gpt2;
}

Schedule parse_schedule(const std::string& name) {
  if (name == "1f1b") return Schedule::one_f_one_b;
  LD_CHECK(name == "gpipe", "dist.schedule: \"", name, "\" is not one of gpipe, 1f1b");
  return Schedule::gpipe;
}

}  // namespace

Gpt2ModelParallel::Gpt2ModelParallel(const models::CausalLM& full, ProcessGrid& grid, const std::string& schedule)
    : tp_rank_(grid.tp_rank), schedule_(parse_schedule(schedule)) {
  const models::Gpt2LMHeadModel& gpt2 = as_gpt2(full);
  LD_ASSERT(grid.tp > 1 || grid.pp > 1, "a model-parallel dimension");
  if (grid.tp > 1) TensorParallelGpt2::check_splittable(gpt2.hf_config(), grid.tp);
  if (grid.pp == 1) {
    tp_ = std::make_unique<TensorParallelGpt2>(gpt2, *grid.tp_group);
  } else if (grid.tp == 1) {
    stage_ = std::make_unique<PipelineGpt2Stage>(gpt2, *grid.pp_group);
  } else {
    stage_ = std::make_unique<TensorParallelGpt2Stage>(gpt2, *grid.tp_group, *grid.pp_group);
  }
}

NamedTensors Gpt2ModelParallel::named_parameters() const {
  return tp_ ? tp_->named_parameters() : stage_->named_parameters();
}

bool Gpt2ModelParallel::counts_in_grad_norm(const std::string& name) const {
  if (tp_) return tp_rank_ == 0 || !tp_->shard_of(name).replicated();
  return stage_->counts_in_grad_norm(name);
}

Tensor Gpt2ModelParallel::loss(const Tensor& inputs, const Tensor& targets) const {
  LD_ASSERT(tp_ != nullptr, "a pipeline runs whole steps (pipeline_step)");
  return tp_->loss(inputs, targets);
}

std::vector<double> Gpt2ModelParallel::pipeline_step(const std::vector<MicroBatch>& micro_batches) {
  LD_ASSERT(stage_ != nullptr, "tensor parallel runs micro-batches (loss)");
  return run_pipeline_step(*stage_, micro_batches, schedule_).losses;
}

nn::StateDict Gpt2ModelParallel::gather_like(const NamedTensors& parts) const {
  if (stage_) return stage_->gather_full(parts);
  nn::StateDict out;
  for (const auto& [name, part] : parts) out[name] = tp_->gather_full(name, part);
  return out;
}

NamedTensors Gpt2ModelParallel::shard_like(const nn::StateDict& full) const {
  if (stage_) return stage_->scatter_full(full);
  NamedTensors out;
  for (const auto& [name, p] : tp_->named_parameters()) {
    const auto it = full.find(name);
    LD_CHECK(it != full.end(), "tensor parallel: no \"", name, "\" in the full state");
    out.emplace_back(name, tp_->shard_full(name, it->second));
  }
  return out;
}

nn::StateDict Gpt2ModelParallel::gather_state_dict() const {
  return stage_ ? stage_->gather_full_state_dict() : tp_->gather_full_state_dict();
}

}  // namespace ld::dist
