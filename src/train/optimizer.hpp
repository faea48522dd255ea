#pragma once
// The optimizer a run configuration chooses (train.optimizer: AdamW or SGD) behind one interface,
// with its state named by parameter so that a checkpoint's optimizer.safetensors can be read by a
// person or another tool: "<parameter>.exp_avg" and "<parameter>.exp_avg_sq" (AdamW's m and v, as
// torch names them), "<parameter>.momentum_buffer" (SGD), plus the step count in the metadata.
//
// Parameter groups follow train/param_groups.hpp: train.weight_decay on weight matrices, none on
// norms, biases and embeddings. Frozen parameters are left out.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "train/adamw.hpp"
#include "train/run_config.hpp"
#include "train/sgd.hpp"

namespace ld::train {

inline constexpr const char* kOptimizerFile = "optimizer.safetensors";

class Optimizer {
 public:
  // train.optimizer, lr (the schedule sets it before each step), betas, eps, momentum, weight_decay.
  Optimizer(const std::vector<std::pair<std::string, Tensor>>& named_params, const TrainSection& train);
  // Over groups made by the caller, names[i] naming the i-th tensor in group order (ZeRO: each
  // rank's segments of the parameters, which keep their parameter's name and weight decay).
  Optimizer(std::vector<ParamGroup> groups, std::vector<std::string> names, const TrainSection& train);

  const std::string& kind() const { return kind_; }  // "adamw" | "sgd"
  void set_lr(double lr);
  void step(float grad_scale = 1.0f);
  void zero_grad();
  int64_t steps() const;
  // The bf16 working copies of the parameters (ops/working_weights.hpp) that step() keeps current:
  // AdamW writes them in its fused pass, SGD rounds them again after its update. Not owned; null
  // for none. Copies of parameters this optimizer does not hold (ZeRO's other segments) are the
  // caller's to refresh.
  void set_working_weights(ops::WorkingWeights* working);
  void set_steps(int64_t steps);
  // The trainable parameters, each tensor once (for clipping and loss-scale checks).
  const std::vector<Tensor>& params() const { return params_; }
  const std::vector<std::string>& names() const { return names_; }  // names()[i] names params()[i]

  // The live state tensors under their names (see above).
  std::vector<std::pair<std::string, Tensor>> state_tensors() const;
  // Writes `path` (safetensors; metadata: optimizer, step).
  void save(const std::filesystem::path& path) const;
  // Restores a save(): same optimizer kind, every state tensor present with its shape and nothing
  // else. Errors name the file and the tensor.
  void load(const std::filesystem::path& path);

 private:
  void build(std::vector<ParamGroup> groups, const TrainSection& train);

  std::string kind_;
  std::vector<Tensor> params_;
  std::vector<std::string> names_;  // names_[i] names params_[i] (the first of a tied tensor's names)
  std::unique_ptr<AdamW> adamw_;
  std::unique_ptr<Sgd> sgd_;
  ops::WorkingWeights* working_ = nullptr;
};

}  // namespace ld::train
