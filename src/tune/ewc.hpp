#pragma once
// Elastic weight consolidation (Kirkpatrick et al. 2017) for continual fine-tuning: after task A, the
// parameters that mattered for A are held near their A values while training on B.
//
// Fisher: the EMPIRICAL diagonal Fisher, F_i = mean over K batches of A of (dL/dθ_i)^2, with L the
// training loss of each batch (its labels, not labels sampled from the model; a per-batch, not
// per-example, gradient). Anchor θ*: the parameters' values when the Fisher is estimated.
// Penalty: λ/2 Σ_i F_i (θ_i - θ*_i)^2 over every estimated parameter, an autograd Tensor to add
// to B's loss (its gradient is λ F (θ - θ*)).
//
// Saved as safetensors so a later run can use an earlier one's: "<parameter>.fisher" and
// "<parameter>.anchor" (f32), metadata {"format": "liandan-ewc", "batches": K}.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace ld::tune {

using NamedParams = std::vector<std::pair<std::string, Tensor>>;

class Ewc {
 public:
  struct Entry {
    Tensor fisher;  // f32, the parameter's shape
    Tensor anchor;  // f32, θ* (a copy)
  };

  // Runs `batch_loss(k)` for k = 0..batches-1 (the loss of A's k-th batch) and backward on each; the
  // parameters that require grad are estimated, the others skipped. Leaves every gradient cleared.
  static Ewc estimate(const NamedParams& params, const std::function<Tensor(int64_t)>& batch_loss, int64_t batches);

  // λ/2 Σ F (θ - θ*)^2 over the entries, reading θ from `params` by name. Every entry's parameter must
  // be there with the same shape (errors name it); parameters without an entry add nothing.
  Tensor penalty(const NamedParams& params, double lambda) const;

  void save(const std::filesystem::path& path) const;
  // Errors name the file and the tensor: not an EWC file, a fisher without its anchor, shapes that differ.
  static Ewc load(const std::filesystem::path& path);

  const std::map<std::string, Entry>& entries() const { return entries_; }
  int64_t batches() const { return batches_; }

 private:
  std::map<std::string, Entry> entries_;
  int64_t batches_ = 0;
};

}  // namespace ld::tune
