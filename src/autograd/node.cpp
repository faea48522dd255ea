#include "autograd/node.hpp"

#include "autograd/engine.hpp"

namespace ld::autograd {

bool any_requires_grad(std::span<const Tensor> inputs) {
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

namespace detail {

bool should_record(std::span<const Tensor> inputs) {
  if (grad_enabled()) return any_requires_grad(inputs);
  if (LeafCollector* collector = LeafCollector::active()) {
    for (const Tensor& t : inputs)
      if (t.defined() && t.requires_grad() && t.is_leaf()) collector->add(t);
  }
  return false;
}

void connect(Node& node, std::span<const Tensor> inputs) {
  node.next_edges.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.is_leaf())
        e.leaf = t.impl_ptr();
      else
        e.fn = t.grad_fn(), e.output_nr = t.impl().output_nr;
      e.shape = t.shape();
      e.dtype = t.dtype();
    }
    node.next_edges.push_back(std::move(e));
  }
}

}  // namespace detail

void set_history(Tensor& out, const std::shared_ptr<Node>& node, uint32_t output_nr) {
  if (!node) return;
  LD_ASSERT(output_nr < node->num_outputs, "output ", output_nr, " of ", node->name());
  TensorImpl& impl = out.impl();
  impl.requires_grad = true;
  impl.grad_fn = node;
  impl.output_nr = output_nr;
}

}  // namespace ld::autograd
