#include "nn/module.hpp"

#include <set>
#include <sstream>

#include "backend/backend.hpp"
#include "core/shape.hpp"

namespace ld::nn {

namespace {

constexpr size_t kNamesShown = 5;

// "3 missing keys: a, b, c" with at most kNamesShown names.
std::string describe_keys(const std::vector<std::string>& names, const char* kind) {
  std::ostringstream os;
  os << names.size() << " " << kind << " key" << (names.size() == 1 ? "" : "s") << ": ";
  for (size_t i = 0; i < names.size() && i < kNamesShown; ++i) os << (i ? ", " : "") << names[i];
  if (names.size() > kNamesShown) os << ", ... (" << names.size() - kNamesShown << " more)";
  return os.str();
}

}  // namespace

void move_in_place(const Tensor& t, Device device) {
  const Tensor moved = t.detach().to(device);
  TensorImpl& impl = t.impl();
  impl.storage = moved.storage();
  impl.strides = moved.strides();
  impl.offset = moved.offset();
}

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative matcher with backtracking to the last '*' (linear in practice, no recursion).
  size_t p = 0, n = 0, star = std::string::npos, star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_n = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void Module::check_new_name(const std::string& name) const {
  LD_CHECK(!name.empty() && name.find('.') == std::string::npos,
           "nn::Module: a parameter or child name must be non-empty and without '.', got '", name, "'");
  for (const auto& [n, _] : params_) LD_CHECK(n != name, "nn::Module: '", name, "' registered twice");
  for (const auto& [n, _] : children_) LD_CHECK(n != name, "nn::Module: '", name, "' registered twice");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  check_new_name(name);
  LD_CHECK(t.defined(), "nn::Module: parameter '", name, "' is an undefined tensor");
  t.set_requires_grad(true);
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::replace_parameter(const std::string& name, Tensor t) {
  for (auto& [n, p] : params_) {
    if (n != name) continue;
    LD_CHECK(t.defined() && t.shape() == p.shape() && t.dtype() == p.dtype(), "nn::Module: replacing '", name,
             "' needs a ", dtype_name(p.dtype()), " tensor of shape ", shape_str(p.shape()));
    t.set_requires_grad(true);
    p = t;
    return t;
  }
  LD_FAIL("nn::Module: no parameter '", name, "' to replace");
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name);
  LD_CHECK(child != nullptr, "nn::Module: child '", name, "' is null");
  children_.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, t] : params_) out.emplace_back(prefix + name, t);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> all, unique;
  collect("", all);
  std::set<const TensorImpl*> seen;
  for (auto& entry : all)
    if (seen.insert(entry.second.impl_ptr().get()).second) unique.push_back(std::move(entry));
  return unique;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [_, t] : named_parameters()) n += t.numel();
  return n;
}

StateDict Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor>> all;
  collect("", all);
  return StateDict(all.begin(), all.end());
}

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  std::vector<std::pair<std::string, Tensor>> all;
  collect("", all);
  // Pass 1: pair each model tensor with a source (any alias of a tied tensor will do) and check it.
  std::map<const TensorImpl*, std::pair<Tensor, Tensor>> plan;  // impl -> (destination, source)
  std::set<std::string> known;
  for (const auto& [name, dst] : all) {
    known.insert(name);
    auto it = state.find(name);
    if (it == state.end()) continue;
    const Tensor& src = it->second;
    LD_CHECK(src.defined(), "load_state_dict: '", name, "' is an undefined tensor");
    LD_CHECK(src.shape() == dst.shape(), "load_state_dict: shape mismatch for '", name, "': the model has ",
             shape_str(dst.shape()), ", the state dict ", shape_str(src.shape()));
    LD_CHECK(src.dtype() == dst.dtype(), "load_state_dict: dtype mismatch for '", name, "': the model has ",
             dtype_name(dst.dtype()), ", the state dict ", dtype_name(src.dtype()));
    plan.emplace(dst.impl_ptr().get(), std::make_pair(dst, src));
  }
  LoadResult result;
  for (const auto& [name, dst] : all)
    if (!plan.count(dst.impl_ptr().get())) result.missing.push_back(name);
  for (const auto& [name, _] : state)
    if (!known.count(name)) result.unexpected.push_back(name);
  if (strict && (!result.missing.empty() || !result.unexpected.empty())) {
    std::string msg = "load_state_dict (strict):";
    // appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on `" " + std::string`
    if (!result.missing.empty()) msg.append(" ").append(describe_keys(result.missing, "missing"));
    if (!result.unexpected.empty())
      msg.append(result.missing.empty() ? " " : "; ").append(describe_keys(result.unexpected, "unexpected"));
    LD_FAIL(msg);
  }
  // Pass 2: everything checked, now write.
  // A checkpoint read on the CPU loads into a model on a device: the source goes where the weight is.
  for (auto& [_, pair] : plan) pair.first.copy_(pair.second.to(pair.first.device()));
  return result;
}

void Module::to(Device device) {
  try {
    backend_for(device);  // an unusable device fails here, before any parameter has moved
  } catch (const Error& e) {
    LD_FAIL("nn::Module::to(", device.str(), "): ", e.what());
  }
  for (const auto& [_, t] : named_parameters()) {  // tied tensors once
    if (t.device() != device) move_in_place(t, device);
    const Tensor grad = t.grad();
    if (grad.defined() && grad.device() != device) move_in_place(grad, device);
  }
}

void Module::train(bool mode) {
  training_ = mode;
  for (auto& [_, child] : children_) child->train(mode);
}

int64_t Module::set_requires_grad_matching(const std::string& pattern, bool value, const char* what) {
  // Every alias is matched, so "lm_head.*" also reaches a weight tied to the embedding.
  std::vector<std::pair<std::string, Tensor>> all;
  collect("", all);
  std::set<const TensorImpl*> matched;
  for (auto& [name, t] : all) {
    if (!glob_match(pattern, name)) continue;
    t.set_requires_grad(value);
    if (!value) t.zero_grad();
    matched.insert(t.impl_ptr().get());
  }
  LD_CHECK(!matched.empty(), what, ": the pattern '", pattern, "' matches no parameter name");
  return int64_t(matched.size());
}

int64_t Module::freeze(const std::string& pattern) { return set_requires_grad_matching(pattern, false, "freeze"); }
int64_t Module::unfreeze(const std::string& pattern) { return set_requires_grad_matching(pattern, true, "unfreeze"); }

void Module::zero_grad() {
  for (auto& t : parameters()) t.zero_grad();
}

}  // namespace ld::nn
