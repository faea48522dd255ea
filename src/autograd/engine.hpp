#pragma once
#include <vector>

#include "core/tensor.hpp"

namespace ld::autograd {

// Reverse-mode sweep from `roots` seeded with `root_grads`. Gradients reaching leaves accumulate
// into their .grad and fire their grad-ready hooks, except for leaves listed in `capture`: their
// gradients are returned (in capture's order) instead, untouched by .grad (used by checkpointing).
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                                 bool retain_graph = false, const std::vector<Tensor>& capture = {});

// Leaves touched by ops while a collector is active (even in no-grad mode), for checkpointing to
// discover the parameters a function uses.
class LeafCollector {
 public:
  LeafCollector();
  ~LeafCollector();
  LeafCollector(const LeafCollector&) = delete;
  LeafCollector& operator=(const LeafCollector&) = delete;
  void add(const Tensor& leaf);
  const std::vector<Tensor>& leaves() const { return leaves_; }
  static LeafCollector* active();

 private:
  std::vector<Tensor> leaves_;
  LeafCollector* previous_;
};

}  // namespace ld::autograd
