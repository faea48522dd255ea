#pragma once
// A Mixture-of-Experts feed-forward layer (Mixtral's block_sparse_moe layout): a router `gate`
// (Linear dim -> num_experts, no bias) scores every token, softmax over all experts (f32), the top-k
// probabilities are kept and renormalised to sum to 1 (Mixtral), each token goes through its k experts
// and the outputs are summed with those weights. The routing decisions (which experts, which slots
// are dropped) are made on the host and are constants for autograd; the weights are differentiable
// w.r.t. the router logits.
//
// Capacity (Switch Transformer / GShard): with capacity_factor > 0 an expert takes at most
// ceil(capacity_factor * tokens * top_k / num_experts) (token, choice) slots; first choices of all
// tokens are served before second choices, and within a rank tokens in order; a slot over capacity is
// dropped (it contributes nothing; the residual connection carries the token on). The weights of a
// token's kept slots are NOT renormalised after a drop: they keep the values they had among all k
// choices. capacity_factor 0 means no limit (Mixtral).
//
// Auxiliary losses, returned by forward and added to the training loss by the caller:
// - load balancing (Switch Transformer eq. 4, generalised to top-k exactly as Hugging Face's
//   load_balancing_loss_func without an attention mask): num_experts * sum_e f_e * P_e, with
//   f_e = (number of (token, choice) slots routed to e, before capacity) / tokens (so sum_e f_e =
//   top_k) and P_e the mean router probability of e over tokens. 1 when balanced at top-1, top_k at
//   top-k. f_e is a constant for autograd; P_e is differentiable. Computed per layer: Hugging Face
//   concatenates the router logits of all layers and computes one loss over them, a model summing
//   this per-layer loss over layers gets a different number (see models/llama.cpp).
//   Every token counts, padding included (Hugging Face can exclude padding with its attention mask).
// - router z-loss (ST-MoE eq. 5): mean over tokens of logsumexp(router logits)^2.
// aux_loss = aux_loss_coef * load_balancing + z_loss_coef * z_loss.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

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

// Throws ld::Error naming the bad field (top_k outside [1, num_experts], negative coefficients or
// capacity_factor). num_experts 0 (disabled) passes.
void validate(const MoeConfig& config);

// The capacity rule of the header comment: the most slots one expert serves for `tokens` tokens
// (unlimited: tokens * top_k).
int64_t expert_capacity(const MoeConfig& config, int64_t tokens);

// Who serves what. A slot is token * top_k + rank.
struct Routing {
  std::vector<std::vector<int64_t>> served;  // per expert: the slots it serves, in service order
  std::vector<int64_t> routed;               // per expert: slots routed to it before capacity
  std::vector<uint8_t> kept;                 // per slot: 1 served, 0 dropped
  int64_t dropped = 0;
};
// choices: the experts of every slot, [tokens * top_k] row-major (rank 0 = the first choice).
Routing route(const std::vector<int64_t>& choices, int64_t tokens, const MoeConfig& config);

struct MoeOutput {
  Tensor y;                     // [..., dim]
  Tensor router_logits;         // [N, num_experts], N = tokens (all leading dims flattened)
  Tensor expert_indices;        // [N, top_k] i64: each token's experts, best first (before capacity)
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

  MoeOutput forward(const Tensor& x) const;  // x [..., dim], at least one token

  const MoeConfig& config() const { return config_; }
  FeedForward& expert(int64_t e) const;

  std::shared_ptr<Linear> gate;
  std::shared_ptr<ModuleList> experts;

 private:
  // y [N, dim] = sum over served slots of weight(slot) * expert(x[token]), scattered back by token.
  Tensor combine_experts(const Tensor& flat, const Tensor& weights, const Routing& routing) const;

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
