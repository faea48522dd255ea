#include "autograd/engine.hpp"

#include <algorithm>
#include <unordered_map>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "ops/ops.hpp"

namespace ld::autograd {

namespace {

thread_local LeafCollector* g_active_collector = nullptr;

struct NodeState {
  int pending = 0;                  // edges from not-yet-run nodes into this one
  std::vector<Tensor> grad_inputs;  // one slot per output of the node
};

struct LeafState {
  int pending = 0;
  int capture_slot = -1;
  bool received = false;  // a gradient arrived in this backward (hooks fire only then)
};

void accumulate(Tensor& slot, Tensor grad) {
  if (!slot.defined())
    slot = std::move(grad);
  else
    slot = ops::add(slot, grad);
}

// Match what a rule returned to the input it belongs to: shape must agree, dtype follows the input.
Tensor conform(Tensor grad, const Edge& edge, const Node& node, size_t input) {
  LD_ASSERT(grad.shape() == edge.shape, node.name(), " returned a gradient of shape ", shape_str(grad.shape()),
            " for input ", input, " of shape ", shape_str(edge.shape));
  if (grad.dtype() != edge.dtype) grad = ops::cast(grad, edge.dtype);
  return grad;
}

void accumulate_into_leaf(TensorImpl& leaf, Tensor grad) {
  if (!leaf.grad) {
    // Own the buffer: a rule may hand the same tensor to several inputs, and later in-place updates
    // of one parameter's gradient (all-reduce, clipping) must not leak into another's.
    bool exclusive = grad.is_contiguous() && grad.impl_ptr().use_count() == 1 &&
                     grad.storage().use_count() == 1 && grad.offset() == 0;
    leaf.grad = (exclusive ? grad : grad.clone()).impl_ptr();
    return;
  }
  Tensor current(leaf.grad);
  if (current.dtype() == DType::f32 && current.is_contiguous() && grad.dtype() == DType::f32) {
    Tensor g = grad.contiguous();
    current.backend().binary(BinaryOp::add, int(current.dim()), current.shape().data(), current.data<float>(),
                             current.strides().data(), g.data<float>(), g.strides().data(), current.data<float>());
    return;
  }
  // bf16/f16 parameters or a non-contiguous .grad set by the user: accumulate in f32, store back.
  Tensor sum = ops::add(current.to(DType::f32), grad.to(DType::f32));
  leaf.grad = (current.dtype() == DType::f32 ? sum : ops::cast(sum, current.dtype())).impl_ptr();
}

}  // namespace

std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads,
                                 bool retain_graph, const std::vector<Tensor>& capture) {
  LD_ASSERT(roots.size() == root_grads.size());
  GradModeGuard no_grad(false);
  std::unordered_map<Node*, NodeState> nodes;
  std::unordered_map<TensorImpl*, LeafState> leaves;
  std::vector<Tensor> captured(capture.size());
  for (size_t i = 0; i < capture.size(); ++i) leaves[capture[i].impl_ptr().get()].capture_slot = int(i);

  // Discover the graph and count, for every node and leaf, how many edges lead into it.
  std::vector<Node*> stack;
  auto visit = [&](Node* n) {
    LD_CHECK(!n->released, "backward: the graph through ", n->name(),
             " was already used by an earlier backward, which freed its saved tensors; "
             "pass retain_graph=true to the first backward to run it twice");
    if (nodes.emplace(n, NodeState{}).second) {
      nodes[n].grad_inputs.resize(n->num_outputs);
      stack.push_back(n);
    }
  };
  for (const Tensor& r : roots)
    if (r.grad_fn()) visit(r.grad_fn().get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (e.fn) {
        visit(e.fn.get());
        ++nodes[e.fn.get()].pending;
      } else if (e.leaf) {
        ++leaves[e.leaf.get()].pending;
      }
    }
  }

  auto deliver_to_leaf = [&](TensorImpl* leaf_impl, const std::shared_ptr<TensorImpl>& leaf_ptr, Tensor grad) {
    LeafState& ls = leaves[leaf_impl];
    if (ls.capture_slot >= 0) {
      accumulate(captured[size_t(ls.capture_slot)], std::move(grad));
    } else if (grad.defined()) {
      accumulate_into_leaf(*leaf_impl, std::move(grad));
      ls.received = true;
    }
    if (--ls.pending <= 0 && ls.capture_slot < 0 && ls.received) {
      Tensor leaf(leaf_ptr);
      for (auto& hook : leaf_impl->grad_ready_hooks) hook(leaf.grad());
    }
  };

  std::vector<Node*> ready;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    if (r.grad_fn())
      accumulate(nodes[r.grad_fn().get()].grad_inputs[r.impl().output_nr], root_grads[i]);
    else if (r.requires_grad())
      ++leaves[r.impl_ptr().get()].pending, deliver_to_leaf(r.impl_ptr().get(), r.impl_ptr(), root_grads[i]);
  }
  for (auto& [n, st] : nodes)
    if (st.pending == 0) ready.push_back(n);

  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    NodeState& st = nodes[n];
    std::vector<Tensor> grads_out = std::move(st.grad_inputs);
    std::vector<Tensor> grads_in;
    if (std::any_of(grads_out.begin(), grads_out.end(), [](const Tensor& g) { return g.defined(); }))
      grads_in = n->backward(grads_out);
    grads_out.clear();
    LD_ASSERT(grads_in.empty() || grads_in.size() == n->next_edges.size(), n->name(), " returned ",
              grads_in.size(), " gradients for ", n->next_edges.size(), " inputs");
    for (size_t i = 0; i < n->next_edges.size(); ++i) {
      const Edge& e = n->next_edges[i];
      Tensor g = i < grads_in.size() ? std::move(grads_in[i]) : Tensor();
      if (g.defined() && e.valid()) g = conform(std::move(g), e, *n, i);
      if (e.fn) {
        NodeState& next = nodes[e.fn.get()];
        if (g.defined()) accumulate(next.grad_inputs[e.output_nr], std::move(g));
        if (--next.pending == 0) ready.push_back(e.fn.get());
      } else if (e.leaf) {
        deliver_to_leaf(e.leaf.get(), e.leaf, std::move(g));
      }
    }
    if (!retain_graph) {
      n->release();
      n->released = true;
    }
  }
  return captured;
}

LeafCollector::LeafCollector() : previous_(g_active_collector) { g_active_collector = this; }
LeafCollector::~LeafCollector() { g_active_collector = previous_; }
LeafCollector* LeafCollector::active() { return g_active_collector; }

void LeafCollector::add(const Tensor& leaf) {
  for (const Tensor& t : leaves_)
    if (t.impl_ptr() == leaf.impl_ptr()) return;
  leaves_.push_back(leaf);
}

}  // namespace ld::autograd
