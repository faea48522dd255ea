#pragma once
// nn::Module: a tree of named parameters and child modules. Full parameter names are the path of
// registration names joined by dots, exactly as PyTorch / Hugging Face spell them
// ("model.layers.0.self_attn.q_proj.weight"), so a state_dict maps one-to-one onto a checkpoint.
// Parameters are leaf Tensors (handles): state_dict() shares their storage and load_state_dict()
// copies into them in place, so layers that keep their own Tensor member see the loaded values.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace ld::nn {

using StateDict = std::map<std::string, Tensor>;

// What a non-strict load_state_dict skipped.
struct LoadResult {
  std::vector<std::string> missing;     // model parameters with no entry in the map
  std::vector<std::string> unexpected;  // map entries the model has no parameter for
};

// True when `name` matches the glob `pattern`: '*' is any run of characters (dots included),
// '?' is any one character.
bool glob_match(const std::string& pattern, const std::string& name);

// Points t's TensorImpl at a contiguous copy of its data on `device`: every handle to t sees it
// there (Module::to's move, for tensors a module holds outside its parameters).
void move_in_place(const Tensor& t, Device device);

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // (full name, parameter) in registration order: a module's own parameters, then each child's
  // in turn. A tensor registered under several names (tied weights) appears once, first name.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;  // elements, tied tensors counted once

  // Every name, tied aliases included, sharing storage with the parameters.
  StateDict state_dict() const;
  // Copies values in after checking every shape and dtype first (nothing is written on an error).
  // A tied tensor is loaded when any of its names is in the map. strict: missing or unexpected
  // keys are an error naming the first few; otherwise they are returned.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // Moves every parameter (and its gradient, if any) to `device` in place: each TensorImpl keeps its
  // identity and only gets a contiguous copy of its data there, so the handles layers hold, tied
  // weights and an optimizer's references stay valid. Parameters already there are left alone.
  // Virtual: a module that holds tensors outside its parameters moves them too (CausalLM's prompt).
  virtual void to(Device device);

  void train(bool mode = true);  // this module and all below it
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Set requires_grad false/true on every parameter one of whose full names matches the glob; returns how
  // many matched and fails when none does (a mistyped pattern must not silently train everything).
  int64_t freeze(const std::string& pattern);
  int64_t unfreeze(const std::string& pattern);
  void zero_grad();

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }

 protected:
  // Marks t as requiring gradients and returns it (the same handle, for a member Tensor).
  Tensor register_parameter(const std::string& name, Tensor t);
  // Swaps the tensor behind an own parameter (weight tying); the shape must stay the same.
  Tensor replace_parameter(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void check_new_name(const std::string& name) const;
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  // Every (full name, tensor), aliases included, in registration order.
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out) const;
  int64_t set_requires_grad_matching(const std::string& pattern, bool value, const char* what);

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Numbered children named "0", "1", ... (PyTorch's nn.ModuleList).
class ModuleList : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> child) {
    items_.push_back(child);
    return register_module(std::to_string(items_.size() - 1), std::move(child));
  }
  size_t size() const { return items_.size(); }
  const std::shared_ptr<Module>& operator[](size_t i) const { return items_.at(i); }
  template <typename M>
  std::shared_ptr<M> at(size_t i) const {
    return std::dynamic_pointer_cast<M>(items_.at(i));
  }

 private:
  std::vector<std::shared_ptr<Module>> items_;
};

}  // namespace ld::nn
