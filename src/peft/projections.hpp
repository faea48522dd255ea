#pragma once
// The projection layers (nn::Linear, nn::Conv1D) of a model, found by their full module names, and
// Hugging Face PEFT's rule for matching target_modules against those names. What LoRA and the
// Houlsby adapter attach to.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/conv1d.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace ld::peft {

// One projection layer: exactly one of linear / conv1d is set. Points into the model, so it is valid
// as long as the model is.
struct Projection {
  std::string name;              // full module name, e.g. "model.layers.0.self_attn.q_proj"
  nn::Linear* linear = nullptr;  // weight [out, in]
  nn::Conv1D* conv1d = nullptr;  // GPT-2's layer, weight [in, out] (PEFT's fan_in_fan_out)

  int64_t in_features() const;
  int64_t out_features() const;
  const Tensor& weight() const;
  bool fan_in_fan_out() const { return conv1d != nullptr; }
  void attach(std::shared_ptr<nn::ProjectionAdapter> adapter) const;
  bool has_adapter(const std::string& kind) const;
};

// Every Linear and Conv1D under `model` in registration order; layers inside attached adapters
// (LoRA's own A and B) are not projections of the model.
std::vector<Projection> find_projections(nn::Module& model);

// The projection called `name`, or an error naming `what` (e.g. the file and key that asked for
// it) and a few names the model has.
Projection find_projection(nn::Module& model, const std::string& name, const std::string& what);

// PEFT's rule for a list of target names: `target` matches a module whose full name equals it or
// ends with "." + target.
bool matches_target(const std::string& module_name, const std::string& target);

// "a, b, c, ... (12 in all)": the first few projection names, for error messages.
std::string describe_projections(const std::vector<Projection>& projections);

// The model's own parameters (named_parameters order), without those of attached adapters: what
// the base checkpoint holds.
std::vector<std::pair<std::string, Tensor>> base_parameters(nn::Module& model);

// Sets requires_grad false on every parameter of `model` (PEFT trains only what it adds).
void freeze_all(nn::Module& model);

// Elements of the parameters that require gradients (tied tensors once).
int64_t trainable_parameter_count(const nn::Module& model);

}  // namespace ld::peft
