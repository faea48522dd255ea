#include "train/parallel_training.hpp"

#include <cmath>
#include <cstdio>
#include <map>

#include "core/error.hpp"
#include "train/grad_clip.hpp"
#include "train/param_groups.hpp"

namespace ld::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kMomentSuffixes[] = {".exp_avg", ".exp_avg_sq"};

std::map<std::string, Tensor> by_name(const NamedTensors& named) { return {named.begin(), named.end()}; }

// optimizer's state for `suffix`, as (parameter name, tensor) in the order of `params`.
NamedTensors moments(const Optimizer& optimizer, const NamedTensors& params, const std::string& suffix) {
  const auto state = by_name(optimizer.state_tensors());
  NamedTensors out;
  for (const auto& [name, p] : params)
    if (auto it = state.find(name + suffix); it != state.end()) out.emplace_back(name, it->second);
  return out;
}

// The optimizer over ZeRO segments: each keeps its parameter's name and weight decay.
std::unique_ptr<Optimizer> segment_optimizer(const dist::DataParallel& dp, const TrainSection& t) {
  ParamGroupOptions options;
  options.weight_decay = float(t.weight_decay);
  std::vector<ParamGroup> groups = {{{}, options.weight_decay}, {{}, 0.0f}};
  std::vector<std::string> names[2];
  for (const dist::Segment& s : dp.segments()) {
    const int g = decays(s.name, s.full, options) ? 0 : 1;
    groups[size_t(g)].params.push_back(s.part);
    names[g].push_back(s.name);
  }
  names[0].insert(names[0].end(), names[1].begin(), names[1].end());
  return std::make_unique<Optimizer>(std::move(groups), std::move(names[0]), t);
}

}  // namespace

ParallelTraining::ParallelTraining(TrainTask& task, const RunConfig& config, dist::Communicator& world)
    : task_(task), c_(config), world_(world) {
  const DistSection& d = c_.dist;
  grid_ = dist::make_process_grid(world_, int(d.tp), int(d.pp));
  LD_CHECK(d.zero == 0 || c_.train.optimizer == "adamw", "dist.zero=", d.zero,
           ": ZeRO shards AdamW's state; with train.optimizer=", c_.train.optimizer, " use dist.zero=0");
  LD_CHECK(world_.size() == 1 || c_.train.device == "cpu", "train.device=", c_.train.device, " with ",
           world_.size(), " ranks: multi-rank training keeps its buffers on the host (the MPI communicator); ",
           "GPU ranks over NCCL are not wired into the trainer yet. Train on cuda as one process");
  LD_CHECK(grid_.pp == 1 || c_.train.precision != "fp16", "dist.pp=", d.pp,
           ": pipeline parallel runs fp32 or bf16; fp16 loss scaling is not supported there");
  if (world_.size() == 1) return;
  if (model_parallel()) task_.set_model_parallel(grid_);
  const NamedTensors named = task_.trainable_parameters();
  // Data-parallel replicas start from the same weights, whatever each one's initialisation did.
  for (const auto& [name, p] : named)
    if (p.requires_grad()) grid_.dp_group->broadcast(p.raw(), p.numel(), dist::ElemType::f32, 0);
  task_.set_data_rank(grid_.dp_rank, grid_.dp);
  if (grid_.dp > 1)
    dp_ = std::make_unique<dist::DataParallel>(
        *grid_.dp_group, named,
        dist::DataParallelOptions{.zero_stage = int(d.zero), .bucket_bytes = int64_t(d.bucket_mb * double(1 << 20))});
}

std::unique_ptr<Optimizer> ParallelTraining::make_optimizer() const {
  if (dp_ && dp_->zero_stage() > 0) return segment_optimizer(*dp_, c_.train);
  return std::make_unique<Optimizer>(task_.trainable_parameters(), c_.train);
}

// Two levels: the whole model's state <-> this rank's part of the model (tensor/pipeline parallel,
// through the task) <-> this rank's ZeRO segments of that part (data parallel).
void ParallelTraining::load_optimizer(Optimizer& optimizer, const fs::path& file) const {
  const bool zero = dp_ && dp_->zero_stage() > 0;
  if (!zero && !model_parallel()) return optimizer.load(file);
  Optimizer full(task_.full_parameters(), c_.train);
  full.load(file);
  for (const char* suffix : kMomentSuffixes) {
    const NamedTensors whole = moments(full, task_.full_parameters(), suffix);
    const auto part = by_name(model_parallel() ? task_.shard_like_parameters(by_name(whole)) : whole);
    const auto own = by_name(optimizer.state_tensors());
    if (!zero) {
      for (const auto& [name, t] : part) Tensor(own.at(name + suffix)).copy_(t);
      continue;
    }
    std::vector<Tensor> segments, fulls;
    for (const dist::Segment& s : dp_->segments()) segments.push_back(own.at(s.name + suffix));
    for (const std::string& p : dp_->parameter_names()) fulls.push_back(part.at(p));
    dp_->scatter_from_full(fulls, segments);
  }
  optimizer.set_steps(full.steps());
}

std::unique_ptr<Optimizer> ParallelTraining::gathered_optimizer(const Optimizer& optimizer) const {
  const bool zero = dp_ && dp_->zero_stage() > 0;
  if (!zero && !model_parallel()) return nullptr;
  std::unique_ptr<Optimizer> full;
  if (main_rank()) full = std::make_unique<Optimizer>(task_.full_parameters(), c_.train);
  for (const char* suffix : kMomentSuffixes) {
    // This rank's part, whole over the data-parallel ranks (on dp rank 0, which holds world rank 0).
    NamedTensors part = moments(optimizer, task_.trainable_parameters(), suffix);
    if (zero) {
      const auto own = by_name(optimizer.state_tensors());
      std::vector<Tensor> segments, fulls;
      for (const dist::Segment& s : dp_->segments()) segments.push_back(own.at(s.name + suffix));
      part.clear();
      for (const auto& [name, p] : task_.trainable_parameters()) {
        if (!p.requires_grad()) continue;
        fulls.push_back(zeros(p.shape()));
        part.emplace_back(name, fulls.back());
      }
      dp_->gather_to_rank0(segments, fulls);
    }
    const nn::StateDict gathered = model_parallel() ? task_.gather_like_parameters(part) : nn::StateDict(part.begin(), part.end());
    if (full)
      for (auto& [name, t] : by_name(moments(*full, task_.full_parameters(), suffix))) Tensor(t).copy_(gathered.at(name));
  }
  if (full) full->set_steps(optimizer.steps());
  return full;
}

void ParallelTraining::start_step() {
  if (dp_) dp_->start_step();
}

void ParallelTraining::begin_micro_batch(bool last) {
  if (dp_) dp_->begin_micro_batch(last);
}

void ParallelTraining::finish_backward() {
  if (dp_) dp_->finish_backward();
}

void ParallelTraining::finish_step() {
  if (dp_) dp_->finish_step();
}

void ParallelTraining::reduce_step(StepReport& r, TrainerState& state, int64_t tokens_before) const {
  if (world_.size() == 1) return;
  // Every rank of a data-parallel replica holds its replica's loss, so the world mean is the mean over replicas.
  double sums[3] = {r.loss, r.lm_loss, r.aux_loss};
  world_.all_reduce(sums, 3, dist::ElemType::f64, dist::ReduceOp::sum);
  const double n = world_.size();
  r.loss = sums[0] / n, r.lm_loss = sums[1] / n, r.aux_loss = sums[2] / n;
  state.tokens_seen = tokens_before + (state.tokens_seen - tokens_before) * grid_.dp;
}

double ParallelTraining::grad_norm(const Optimizer& optimizer) const {
  if (world_.size() == 1) return train::grad_norm(optimizer.params());
  // Each rank's squares of what it updates, counting model-parallel replicas once; data-parallel
  // replicas without ZeRO hold the same gradients, so their sum is divided back out.
  double local = 0;
  for (size_t i = 0; i < optimizer.params().size(); ++i) {
    if (!task_.counts_in_grad_norm(optimizer.names()[i])) continue;
    const double norm = train::grad_norm({optimizer.params()[i]});
    local += norm * norm;
  }
  const double copies = dp_ && dp_->zero_stage() > 0 ? 1.0 : double(grid_.dp);
  return std::sqrt(world_.all_reduce_sum(local) / copies);
}

bool ParallelTraining::any_rank(bool flag) const {
  if (world_.size() == 1) return flag;
  return world_.all_reduce_max(flag ? 1.0 : 0.0) > 0;
}

std::string ParallelTraining::describe(const Optimizer& optimizer) const {
  if (world_.size() == 1) return "";
  auto elements = [](const auto& tensors) {
    int64_t n = 0;
    for (const auto& t : tensors) n += t.numel();
    return n;
  };
  int64_t whole = 0;
  for (const auto& [name, p] : task_.full_parameters()) whole += p.numel();
  const int64_t mine = elements(optimizer.params());
  const int64_t grads = dp_ ? dp_->gradient_bytes_held() : mine * 4;
  const int64_t state_per_element = optimizer.kind() == "adamw" ? 8 : 4;
  char line[320];
  std::snprintf(line, sizeof line,
                "job: %d ranks (%s) = dp %d x tp %d x pp %d, ZeRO-%d; per rank: optimizer state %.1f MiB, "
                "gradients %.1f MiB (whole model: %.1f MiB, %.1f MiB)",
                world_.size(), world_.backend_name().c_str(), grid_.dp, grid_.tp, grid_.pp,
                dp_ ? dp_->zero_stage() : 0, double(mine * state_per_element) / (1 << 20), double(grads) / (1 << 20),
                double(whole * state_per_element) / (1 << 20), double(whole * 4) / (1 << 20));
  return line;
}

nlohmann::json ParallelTraining::topology(const RunConfig& config) const {
  return {{"backend", world_.backend_name()}, {"world_size", world_.size()},
          {"data_parallel", grid_.dp},        {"tensor_parallel", grid_.tp},
          {"pipeline_parallel", grid_.pp},    {"zero_stage", dp_ ? dp_->zero_stage() : 0},
          {"bucket_mb", config.dist.bucket_mb}, {"pipeline_schedule", config.dist.schedule}};
}

}  // namespace ld::train
