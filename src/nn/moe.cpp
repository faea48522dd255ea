#include "nn/moe.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::nn {

void validate(const MoeConfig& c) {
  LD_CHECK(c.num_experts >= 0, "moe: num_local_experts must be >= 0 (0 = no MoE), got ", c.num_experts);
  if (c.enabled())
    LD_CHECK(c.top_k >= 1 && c.top_k <= c.num_experts, "moe: num_experts_per_tok (top_k) must be in [1, ",
             c.num_experts, "] (num_local_experts), got ", c.top_k);
  LD_CHECK(c.aux_loss_coef >= 0, "moe: router_aux_loss_coef must be >= 0, got ", c.aux_loss_coef);
  LD_CHECK(c.z_loss_coef >= 0, "moe: router_z_loss_coef must be >= 0, got ", c.z_loss_coef);
  LD_CHECK(c.capacity_factor >= 0, "moe: moe_capacity_factor must be >= 0 (0 = no limit), got ",
           c.capacity_factor);
}

int64_t expert_capacity(const MoeConfig& c, int64_t tokens) {
  const int64_t slots = tokens * c.top_k;
  if (c.capacity_factor == 0) return slots;
  return std::min(slots, int64_t(std::ceil(c.capacity_factor * double(slots) / double(c.num_experts))));
}

Routing route(const std::vector<int64_t>& choices, int64_t tokens, const MoeConfig& c) {
  const int64_t K = c.top_k, E = c.num_experts;
  LD_ASSERT(int64_t(choices.size()) == tokens * K, "moe route: ", choices.size(), " choices for ", tokens,
            " tokens of top_k ", K);
  const int64_t capacity = expert_capacity(c, tokens);
  Routing r;
  r.served.resize(size_t(E));
  r.routed.assign(size_t(E), 0);
  r.kept.assign(choices.size(), 0);
  // Rank-major: every token's first choice is served before any second choice.
  for (int64_t rank = 0; rank < K; ++rank) {
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t slot = t * K + rank, e = choices[size_t(slot)];
      LD_ASSERT(e >= 0 && e < E, "moe route: expert ", e, " out of range");
      ++r.routed[size_t(e)];
      if (int64_t(r.served[size_t(e)].size()) < capacity) {
        r.served[size_t(e)].push_back(slot);
        r.kept[size_t(slot)] = 1;
      } else {
        ++r.dropped;
      }
    }
  }
  return r;
}

namespace {

// num_experts * sum_e f_e * P_e, f_e = routed_e / tokens (a constant), P_e = mean_t probs[t, e].
Tensor load_balancing_loss(const Tensor& probs, const Routing& routing) {
  const int64_t tokens = probs.size(0), E = probs.size(1);
  std::vector<float> f(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) f[size_t(e)] = float(double(routing.routed[size_t(e)]) / double(tokens));
  Tensor fraction = from_vector(f, {E}, probs.device());
  return ops::scale(ops::sum(ops::mul(fraction, ops::mean(probs, {0}))), double(E));
}

// mean_t logsumexp(logits[t])^2; logsumexp = l_0 - log_softmax(l)_0 is stable and differentiable.
Tensor z_loss(const Tensor& logits) {
  Tensor lse = ops::sub(logits.narrow(1, 0, 1), ops::log_softmax(logits, -1).narrow(1, 0, 1));
  return ops::mean(ops::mul(lse, lse));
}

}  // namespace

MoeFfn::MoeFfn(int64_t dim, const MoeConfig& config, const ExpertFactory& make_expert, Generator& gen)
    : config_(config), dim_(dim) {
  validate(config);
  LD_CHECK(config.enabled(), "MoeFfn: num_experts must be >= 1, got ", config.num_experts);
  LD_CHECK(dim > 0, "MoeFfn: dim must be positive, got ", dim);
  gate = register_module("gate", std::make_shared<Linear>(dim, config.num_experts, /*bias=*/false, gen));
  experts = register_module("experts", std::make_shared<ModuleList>());
  for (int64_t e = 0; e < config.num_experts; ++e) {
    std::shared_ptr<FeedForward> expert = make_expert(gen);
    LD_CHECK(expert != nullptr, "MoeFfn: the expert factory returned null for expert ", e);
    experts->push_back(expert);
  }
}

FeedForward& MoeFfn::expert(int64_t e) const {
  LD_CHECK(e >= 0 && e < config_.num_experts, "MoeFfn: expert ", e, " out of range [0, ", config_.num_experts, ")");
  return *experts->at<FeedForward>(size_t(e));
}

MoeOutput MoeFfn::forward(const Tensor& x) const {
  LD_CHECK(x.dim() >= 1 && x.size(-1) == dim_, "MoeFfn: input must be [..., ", dim_, "], got ",
           shape_str(x.shape()));
  const int64_t N = x.numel() / dim_;
  LD_CHECK(N > 0, "MoeFfn: input ", shape_str(x.shape()), " has no tokens");
  Tensor flat = x.reshape({N, dim_});
  MoeOutput out;
  out.router_logits = gate->forward(flat);
  Tensor probs = ops::softmax(out.router_logits, -1);
  ops::TopK top = ops::topk(probs, config_.top_k, -1);
  Tensor weights = ops::div(top.values, ops::sum(top.values, {-1}, /*keepdim=*/true));  // Mixtral's renormalisation
  out.expert_indices = top.indices.contiguous();
  Routing routing = route(out.expert_indices.to(kCPU).to_vector<int64_t>(), N, config_);
  out.dropped = routing.dropped;
  out.y = combine_experts(flat, weights, routing).reshape(x.shape());
  out.load_balancing_loss = load_balancing_loss(probs, routing);
  out.z_loss = z_loss(out.router_logits);
  out.aux_loss = ops::add(ops::scale(out.load_balancing_loss, config_.aux_loss_coef),
                          ops::scale(out.z_loss, config_.z_loss_coef));
  return out;
}

Tensor MoeFfn::combine_experts(const Tensor& flat, const Tensor& weights, const Routing& routing) const {
  const int64_t N = flat.size(0), K = config_.top_k;
  const Device device = flat.device();
  Tensor slot_weights = weights.reshape({N * K, 1});
  std::vector<Tensor> contributions;
  std::vector<int64_t> tokens;
  for (int64_t e = 0; e < config_.num_experts; ++e) {
    const std::vector<int64_t>& slots = routing.served[size_t(e)];
    if (slots.empty()) continue;
    const int64_t m = int64_t(slots.size());
    std::vector<int64_t> expert_tokens(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) expert_tokens[i] = slots[i] / K;
    Tensor rows = ops::embedding(from_vector(expert_tokens, {m}, device), flat);  // gather
    Tensor w = ops::embedding(from_vector(slots, {m}, device), slot_weights);      // [m, 1]
    contributions.push_back(ops::mul(expert(e).forward(rows), w));
    tokens.insert(tokens.end(), expert_tokens.begin(), expert_tokens.end());
  }
  LD_ASSERT(!contributions.empty(), "MoeFfn: no slot was served");  // capacity >= 1 when tokens >= 1
  Tensor all = contributions.size() == 1 ? contributions[0] : ops::concat(contributions, 0);
  return ops::index_add(from_vector(tokens, {int64_t(tokens.size())}, device), all, N);
}

MixtralExpert::MixtralExpert(int64_t dim, int64_t hidden, Generator& gen) {
  w1 = register_module("w1", std::make_shared<Linear>(dim, hidden, /*bias=*/false, gen));
  w2 = register_module("w2", std::make_shared<Linear>(hidden, dim, /*bias=*/false, gen));
  w3 = register_module("w3", std::make_shared<Linear>(dim, hidden, /*bias=*/false, gen));
}

Tensor MixtralExpert::forward(const Tensor& x) const {
  return w2->forward(ops::swiglu(w1->forward(x), w3->forward(x)));
}

}  // namespace ld::nn
