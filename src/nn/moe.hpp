#pragma once
// A Mixture-of-Experts feed-forward layer (Mixtral's block_sparse_moe layout): a router `gate`
// (Linear dim -> num_experts, no bias) scores every token, softmax over all experts, the top-k are
// kept and renormalised to sum to 1 (Mixtral), each token goes through its k experts and the outputs
// are summed with those weights.
//
// Capacity (Switch Transformer / GShard): with capacity_factor > 0 an expert takes at most
// ceil(capacity_factor * tokens * top_k / num_experts) tokens; first choices are served before second
// choices, and within a rank tokens in order; a token over capacity is dropped for that expert (its
// slot contributes nothing, the residual connection carries the token on). capacity_factor 0 means no
// limit (Mixtral).
//
// Auxiliary losses, returned by forward and added to the training loss by the caller:
// - load balancing (Switch Transformer eq. 4, generalised to top-k exactly as Hugging Face's
//   load_balancing_loss_func): num_experts * sum_e f_e * P_e, f_e the fraction of (token, choice)
//   slots routed to expert e before capacity, P_e the mean router probability of e. 1 when balanced
//   at top-1.
// - router z-loss (ST-MoE eq. 5): mean over tokens of logsumexp(router logits)^2.
// aux_loss = aux_loss_coef * load_balancing + z_loss_coef * z_loss.
#include <cstdint>
#include <functional>
#include <memory>

#include "core/rng.hpp"
#include "nn/feed_forward.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace ld::nn {

struct MoeConfig {
  int64_t num_experts = 0;       // 0: a dense MLP, no MoE
  int64_t top_k = 2;             // num_experts_per_tok
  double aux_loss_coef = 0.001;  // router_aux_loss_coef (Mixtral's default)
  double z_loss_coef = 0.0;      // router_z_loss_coef
  double capacity_factor = 0.0;  // 0: no capacity limit
  bool enabled() const { return num_experts > 0; }
};

// Throws ld::Error naming the bad field (top_k outside [1, num_experts], negative coefficients...).
void validate(const MoeConfig& config);

struct MoeOutput {
  Tensor y;                     // [..., dim]
  Tensor router_logits;         // [N, num_experts], N = tokens (all leading dims flattened)
  Tensor load_balancing_loss;   // scalar
  Tensor z_loss;                // scalar
  Tensor aux_loss;              // scalar: the weighted sum above
  int64_t dropped = 0;          // (token, choice) slots dropped by the capacity limit
};

class MoeFfn : public Module {
 public:
  using ExpertFactory = std::function<std::shared_ptr<FeedForward>(Generator&)>;
  // Registers "gate" (Linear dim -> num_experts, no bias) and "experts" (a ModuleList of
  // num_experts modules made by make_expert).
  MoeFfn(int64_t dim, const MoeConfig& config, const ExpertFactory& make_expert, Generator& gen);

  MoeOutput forward(const Tensor& x) const;  // x [..., dim]

  const MoeConfig& config() const { return config_; }
  FeedForward& expert(int64_t e) const;

  std::shared_ptr<Linear> gate;
  std::shared_ptr<ModuleList> experts;

 private:
  MoeConfig config_;
  int64_t dim_;
};

// Mixtral's expert (MixtralBlockSparseTop2MLP): w2(silu(w1 x) * w3 x), no biases.
class MixtralExpert : public FeedForward {
 public:
  MixtralExpert(int64_t dim, int64_t hidden, Generator& gen);
  Tensor forward(const Tensor& x) const override;

  std::shared_ptr<Linear> w1, w2, w3;  // w1, w3: dim -> hidden; w2: hidden -> dim
};

}  // namespace ld::nn
