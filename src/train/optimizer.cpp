#include "train/optimizer.hpp"

#include <map>
#include <set>

#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "train/param_groups.hpp"

namespace ld::train {

namespace fs = std::filesystem;

Optimizer::Optimizer(const std::vector<std::pair<std::string, Tensor>>& named_params, const TrainSection& train) {
  ParamGroupOptions group_options;
  group_options.weight_decay = float(train.weight_decay);
  std::vector<ParamGroup> groups = make_param_groups(named_params, group_options);
  // A tensor's name: the first name named_parameters gives it (the one checkpoints keep).
  std::map<const void*, std::string> name_of;
  for (const auto& [name, t] : named_params) name_of.emplace(t.impl_ptr().get(), name);
  for (const ParamGroup& g : groups)
    for (const Tensor& p : g.params) names_.push_back(name_of.at(p.impl_ptr().get()));
  build(std::move(groups), train);
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, std::vector<std::string> names, const TrainSection& train)
    : names_(std::move(names)) {
  build(std::move(groups), train);
}

void Optimizer::build(std::vector<ParamGroup> groups, const TrainSection& train) {
  kind_ = train.optimizer;
  LD_CHECK(kind_ == "adamw" || kind_ == "sgd", "train.optimizer: \"", kind_, "\" is not one of adamw, sgd");
  for (const ParamGroup& g : groups)
    for (const Tensor& p : g.params) params_.push_back(p);
  LD_ASSERT(params_.size() == names_.size(), "one name per optimized tensor");
  if (kind_ == "adamw") {
    AdamWOptions o;
    o.lr = float(train.lr);
    o.beta1 = float(train.beta1), o.beta2 = float(train.beta2), o.eps = float(train.eps);
    adamw_ = std::make_unique<AdamW>(std::move(groups), o);
  } else {
    SgdOptions o;
    o.lr = float(train.lr);
    o.momentum = float(train.momentum);
    sgd_ = std::make_unique<Sgd>(std::move(groups), o);
  }
}

void Optimizer::set_lr(double lr) {
  if (adamw_) adamw_->set_lr(float(lr));
  else sgd_->set_lr(float(lr));
}

void Optimizer::step(float grad_scale) {
  if (adamw_) {
    adamw_->step(grad_scale);
    return;
  }
  sgd_->step(grad_scale);
  if (working_ != nullptr) working_->refresh(sgd_->steps());
}

void Optimizer::set_working_weights(ops::WorkingWeights* working) {
  working_ = working;
  if (adamw_) adamw_->set_working_weights(working);
}

void Optimizer::zero_grad() {
  if (adamw_) adamw_->zero_grad();
  else sgd_->zero_grad();
}

int64_t Optimizer::steps() const { return adamw_ ? adamw_->steps() : sgd_->steps(); }

std::vector<std::pair<std::string, Tensor>> Optimizer::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  if (adamw_) {
    const auto state = adamw_->state();
    for (size_t i = 0; i < state.size(); ++i) {
      out.emplace_back(names_[i] + ".exp_avg", state[i].m);
      out.emplace_back(names_[i] + ".exp_avg_sq", state[i].v);
    }
  } else {
    const auto state = sgd_->state();
    for (size_t i = 0; i < state.size(); ++i)
      if (state[i].momentum_buffer.defined()) out.emplace_back(names_[i] + ".momentum_buffer", state[i].momentum_buffer);
  }
  return out;
}

void Optimizer::save(const fs::path& path) const {
  io::save_safetensors(path, state_tensors(), {{"optimizer", kind_}, {"step", std::to_string(steps())}});
}

void Optimizer::load(const fs::path& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  const auto& meta = file.metadata();
  auto kind = meta.find("optimizer");
  auto step = meta.find("step");
  LD_CHECK(kind != meta.end() && step != meta.end(), path.string(),
           ": not an optimizer state (no 'optimizer' and 'step' in the metadata)");
  LD_CHECK(kind->second == kind_, path.string(), ": the state of a ", kind->second,
           " optimizer, but train.optimizer is ", kind_);
  int64_t steps = 0;
  try {
    steps = std::stoll(step->second);
  } catch (const std::exception&) {
    LD_FAIL(path.string(), ": step '", step->second, "' in the metadata is not a number");
  }
  const auto wanted = state_tensors();
  std::set<std::string> names;
  for (const auto& [name, dst] : wanted) {
    names.insert(name);
    LD_CHECK(file.contains(name), path.string(), ": no optimizer state for '", name,
             "' (was the checkpoint written for another model, or with other frozen parameters?)");
    Tensor src = file.get(name, DType::f32);
    LD_CHECK(src.shape() == dst.shape(), path.string(), ": '", name, "' has shape ", shape_str(src.shape()),
             ", the parameter ", shape_str(dst.shape()));
  }
  for (const io::TensorInfo& info : file.tensors())
    LD_CHECK(names.count(info.name), path.string(), ": unexpected tensor '", info.name,
             "' (the model has no such trainable parameter)");
  for (const auto& [name, dst] : wanted) {
    Tensor d = dst;
    d.copy_(file.get(name, DType::f32).to(d.device()));  // read on the host, kept where the parameter is
  }
  set_steps(steps);
}

void Optimizer::set_steps(int64_t steps) {
  if (adamw_) adamw_->set_steps(steps);
  else sgd_->set_steps(steps);
}

}  // namespace ld::train
