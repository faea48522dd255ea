#pragma once
// The Houlsby adapter (Houlsby et al. 2019): a bottleneck on a block's output, h + up(act(down(h))),
// after the attention and after the feed-forward network, before each residual add. It is attached
// to the projection that ends each sublayer (GPT-2: attn.c_proj and mlp.c_proj; LLaMA family:
// self_attn.o_proj and mlp.down_proj), whose output is exactly that h. down ~ N(0, 0.02) with bias
// 0, up = 0 (weight and bias), so the model starts unchanged. PEFT has no such type: saved with
// "peft_type": "LIANDAN_ADAPTER" in PEFT's file layout (peft_io.hpp).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "models/causal_lm.hpp"
#include "nn/layers.hpp"
#include "nn/projection_adapter.hpp"
#include "peft/projections.hpp"

namespace ld::peft {

struct AdapterConfig {
  int64_t width = 64;                // bottleneck size
  std::string nonlinearity = "gelu";  // gelu (erf, nn.GELU's) | relu

  void validate() const;
};

class HoulsbyAdapter : public nn::ProjectionAdapter {
 public:
  HoulsbyAdapter(int64_t dim, const AdapterConfig& config, Generator& gen);
  Tensor adapt(const Tensor& x, Tensor y) const override;  // y + up(act(down(y)))
  std::string kind() const override { return "adapter"; }

  std::shared_ptr<nn::Linear> adapter_down;  // dim -> width, with bias
  std::shared_ptr<nn::Linear> adapter_up;    // width -> dim, with bias

 private:
  bool relu_;
};

struct AdapterTarget {
  Projection projection;
  std::shared_ptr<HoulsbyAdapter> adapter;
};

struct AdapterModel {
  AdapterConfig config;
  std::vector<AdapterTarget> targets;

  int64_t trainable_parameter_count() const;  // sum over targets of 2 * dim * width + width + dim
};

// The modules a Houlsby adapter goes on for this model (two per layer). MoE models are refused:
// their feed-forward output is a weighted sum of experts, not one projection.
std::vector<std::string> houlsby_targets(const models::CausalLM& model);

// Freezes the base and attaches an adapter to each of houlsby_targets(model).
AdapterModel apply_houlsby(models::CausalLM& model, const AdapterConfig& config, Generator& gen);

// Freezes the base and attaches to exactly these modules (a saved adapter's); `what` names the source.
AdapterModel apply_houlsby_to(nn::Module& model, const AdapterConfig& config,
                              const std::vector<std::string>& module_names, Generator& gen, const std::string& what);

}  // namespace ld::peft
