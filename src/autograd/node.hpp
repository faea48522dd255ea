#pragma once
// A Node is the backward rule of one op application: it holds what the rule needs (saved tensors,
// sizes) and one edge per differentiable input. Rules are written with other ops, so they run on
// every backend; they run with grad mode off (no double backward).
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/tensor.hpp"

namespace ld::autograd {

struct Node;

// Where an input's gradient goes: into output `output_nr` of the node that produced the input, or
// into a leaf's .grad. Both empty when the input needs no gradient.
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t output_nr = 0;
  std::shared_ptr<TensorImpl> leaf;
  Shape shape;  // of the input, to check what the rule returns
  DType dtype = DType::f32;
  bool valid() const { return fn || leaf; }
};

struct Node {
  std::vector<Edge> next_edges;  // one per input, in the op's argument order
  uint32_t num_outputs = 1;
  bool released = false;  // saved tensors dropped by a backward without retain_graph

  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // grad_outputs: one per output, undefined where no gradient flowed. Returns one gradient per
  // input (undefined where the input needs none); needs_input_grad(i) says which are wanted.
  virtual std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) = 0;
  // Drop saved tensors once the graph has been used (retain_graph = false).
  virtual void release() {}

  bool needs_input_grad(size_t i) const { return i < next_edges.size() && next_edges[i].valid(); }
};

bool any_requires_grad(std::span<const Tensor> inputs);
inline bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  return any_requires_grad(std::span<const Tensor>(inputs.begin(), inputs.size()));
}

// If grad mode is on and any input requires grad, create node N with edges to the inputs; else
// return nullptr (and no op should save anything for backward). Undefined inputs get empty edges.
template <typename N, typename... Args>
std::shared_ptr<N> make_node(std::initializer_list<Tensor> inputs, Args&&... args);
// The same for ops with any number of inputs (concat, checkpoint).
template <typename N, typename... Args>
std::shared_ptr<N> make_node(std::span<const Tensor> inputs, Args&&... args);

// Make `out` the `output_nr`-th output of `node` (no-op when node is null).
void set_history(Tensor& out, const std::shared_ptr<Node>& node, uint32_t output_nr = 0);

// --- implementation details used by make_node
namespace detail {
bool should_record(std::span<const Tensor> inputs);  // also feeds an active LeafCollector
void connect(Node& node, std::span<const Tensor> inputs);
}  // namespace detail

template <typename N, typename... Args>
std::shared_ptr<N> make_node(std::span<const Tensor> inputs, Args&&... args) {
  if (!detail::should_record(inputs)) return nullptr;
  auto node = std::make_shared<N>(std::forward<Args>(args)...);
  detail::connect(*node, inputs);
  return node;
}

template <typename N, typename... Args>
std::shared_ptr<N> make_node(std::initializer_list<Tensor> inputs, Args&&... args) {
  return make_node<N>(std::span<const Tensor>(inputs.begin(), inputs.size()), std::forward<Args>(args)...);
}

}  // namespace ld::autograd
