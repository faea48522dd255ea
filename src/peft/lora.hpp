#pragma once
// LoRA (Hu et al. 2021) as Hugging Face PEFT computes it: a frozen projection W plus a trainable
// low-rank update, y = W x + scale * B A dropout(x), A [r, in] kaiming-uniform (nn.Linear's init,
// U(-1/sqrt(in), 1/sqrt(in))), B [out, r] zeros, so the model starts unchanged. scale = alpha / r,
// or alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023). The update only sees the layer's input and
// output (nn::ProjectionAdapter), so a quantised frozen base (QLoRA) needs no change here; merging
// needs an f32 base weight.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "nn/layers.hpp"
#include "nn/projection_adapter.hpp"
#include "peft/projections.hpp"

namespace ld::peft {

inline constexpr const char* kAllLinear = "all-linear";

struct LoraConfig {
  int64_t r = 8;
  double alpha = 8.0;    // PEFT's lora_alpha
  double dropout = 0.0;  // on the LoRA branch's input only
  // Names matched by PEFT's rule (matches_target); {"all-linear"}: every Linear/Conv1D except the
  // output head lm_head; empty: the model type's default (PEFT's table: q and v projections).
  std::vector<std::string> target_modules{};
  bool use_rslora = false;

  double scale() const;
  void validate() const;  // r >= 1, alpha > 0, 0 <= dropout < 1
};

// PEFT's default target_modules for a model type (gpt2: c_attn; llama family: q_proj, v_proj;
// bert: query, value); an unknown type is an error.
std::vector<std::string> default_lora_targets(const std::string& model_type);

class LoraLayer : public nn::ProjectionAdapter {
 public:
  LoraLayer(int64_t in_features, int64_t out_features, const LoraConfig& config, Generator& gen);
  Tensor adapt(const Tensor& x, Tensor y) const override;  // y + scale * B(A(dropout(x))), or y when merged
  std::string kind() const override { return "lora"; }

  Tensor delta_weight() const;  // scale * B @ A, [out, in]

  std::shared_ptr<nn::Linear> lora_A;  // weight [r, in]
  std::shared_ptr<nn::Linear> lora_B;  // weight [out, r]
  double scale, dropout;
  bool merged = false;  // the update is in the base weight; adapt adds nothing
};

struct LoraTarget {
  Projection projection;
  std::shared_ptr<LoraLayer> lora;
};

struct LoraModel {
  LoraConfig config;  // target_modules as resolved (defaults filled in, all-linear expanded to names)
  std::vector<LoraTarget> targets;

  int64_t trainable_parameter_count() const;  // sum over targets of r * (in + out)
};

// Freezes every parameter of `model`, then attaches a LoraLayer to each projection that
// config.target_modules selects. model_type picks the default targets when the list is empty.
// Selecting nothing is an error naming the patterns and some module names the model has.
LoraModel apply_lora(nn::Module& model, LoraConfig config, Generator& gen, const std::string& model_type = "");

// Attaches to exactly these modules (a saved adapter's); freezes the base first. `what` names the
// source in errors.
LoraModel apply_lora_to(nn::Module& model, const LoraConfig& config, const std::vector<std::string>& module_names,
                        Generator& gen, const std::string& what);

// W += scale * B @ A (transposed for Conv1D) under no-grad; the LoRA branch then adds nothing.
// Merging a merged layer (or unmerging an unmerged one) changes nothing.
void merge_lora(LoraModel& model);
void unmerge_lora(LoraModel& model);

}  // namespace ld::peft
