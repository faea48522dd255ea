#include "peft/projections.hpp"

#include <set>
#include <sstream>

#include "core/error.hpp"

namespace ld::peft {

namespace {

constexpr size_t kNamesShown = 6;

void collect(nn::Module& module, const std::string& name, std::vector<Projection>& out) {
  if (dynamic_cast<nn::ProjectionAdapter*>(&module) != nullptr) return;
  if (auto* linear = dynamic_cast<nn::Linear*>(&module)) out.push_back({.name = name, .linear = linear});
  if (auto* conv = dynamic_cast<nn::Conv1D*>(&module)) out.push_back({.name = name, .conv1d = conv});
  for (const auto& [child_name, child] : module.named_children())
    collect(*child, name.empty() ? child_name : name + "." + child_name, out);
}

}  // namespace

int64_t Projection::in_features() const { return linear ? linear->weight.size(1) : conv1d->weight.size(0); }
int64_t Projection::out_features() const { return linear ? linear->weight.size(0) : conv1d->weight.size(1); }
const Tensor& Projection::weight() const { return linear ? linear->weight : conv1d->weight; }

void Projection::attach(std::shared_ptr<nn::ProjectionAdapter> adapter) const {
  LD_CHECK(!has_adapter(adapter->kind()), "'", name, "' already has a ", adapter->kind(),
           " adapter (one of each kind per layer)");
  if (linear)
    linear->attach_adapter(std::move(adapter));
  else
    conv1d->attach_adapter(std::move(adapter));
}

bool Projection::has_adapter(const std::string& kind) const {
  for (const auto& a : linear ? linear->adapters() : conv1d->adapters())
    if (a->kind() == kind) return true;
  return false;
}

std::vector<Projection> find_projections(nn::Module& model) {
  std::vector<Projection> out;
  collect(model, "", out);
  return out;
}

Projection find_projection(nn::Module& model, const std::string& name, const std::string& what) {
  const std::vector<Projection> all = find_projections(model);
  for (const Projection& p : all)
    if (p.name == name) return p;
  LD_FAIL(what, ": the model has no Linear/Conv1D module '", name, "' (it has ", describe_projections(all), ")");
}

bool matches_target(const std::string& module_name, const std::string& target) {
  if (target.empty() || module_name.size() < target.size()) return false;
  if (module_name == target) return true;
  const size_t start = module_name.size() - target.size();
  return module_name[start - 1] == '.' && module_name.compare(start, target.size(), target) == 0;
}

std::string describe_projections(const std::vector<Projection>& projections) {
  std::ostringstream os;
  for (size_t i = 0; i < projections.size() && i < kNamesShown; ++i) os << (i ? ", " : "") << projections[i].name;
  if (projections.empty()) os << "no Linear/Conv1D layers";
  if (projections.size() > kNamesShown) os << ", ... (" << projections.size() << " in all)";
  return os.str();
}

std::vector<std::pair<std::string, Tensor>> base_parameters(nn::Module& model) {
  std::set<const TensorImpl*> adapter_tensors;
  for (const Projection& p : find_projections(model))
    for (const auto& adapter : p.linear ? p.linear->adapters() : p.conv1d->adapters())
      for (const Tensor& t : adapter->parameters()) adapter_tensors.insert(t.impl_ptr().get());
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [name, t] : model.named_parameters())
    if (!adapter_tensors.count(t.impl_ptr().get())) out.emplace_back(name, t);
  return out;
}

void freeze_all(nn::Module& model) {
  for (Tensor& t : model.parameters()) {
    t.set_requires_grad(false);
    t.zero_grad();
  }
}

int64_t trainable_parameter_count(const nn::Module& model) {
  int64_t n = 0;
  for (const auto& [_, t] : model.named_parameters())
    if (t.requires_grad()) n += t.numel();
  return n;
}

}  // namespace ld::peft
