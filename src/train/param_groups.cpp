#include "train/param_groups.hpp"

#include <map>

#include "nn/module.hpp"

namespace ld::train {

bool decays(const std::string& name, const Tensor& param, const ParamGroupOptions& options) {
  if (param.dim() < 2) return false;
  for (const std::string& pattern : options.no_decay_patterns)
    if (nn::glob_match(pattern, name)) return false;
  return true;
}

std::vector<ParamGroup> make_param_groups(const std::vector<std::pair<std::string, Tensor>>& named_params,
                                          const ParamGroupOptions& options) {
  // First pass: one verdict per tensor, so a tied weight seen under a decayed name and an embedding
  // name is not decayed whichever name comes first.
  std::map<const TensorImpl*, bool> decay_of;
  for (const auto& [name, p] : named_params) {
    if (!options.include_frozen && !p.requires_grad()) continue;
    auto it = decay_of.try_emplace(p.impl_ptr().get(), true).first;
    it->second = it->second && decays(name, p, options);
  }
  std::vector<ParamGroup> groups(2);
  groups[0].weight_decay = options.weight_decay;
  groups[1].weight_decay = 0.0f;
  for (const auto& [name, p] : named_params) {
    auto it = decay_of.find(p.impl_ptr().get());
    if (it == decay_of.end()) continue;  // frozen, or already placed under an earlier name
    groups[it->second ? 0 : 1].params.push_back(p);
    decay_of.erase(it);
  }
  return groups;
}

}  // namespace ld::train
