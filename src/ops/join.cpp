// concat, split and stack. concat copies each input into its slice of a fresh output; split returns
// views of its input that share one backward node, so the gradient is assembled by one concat
// instead of one zero-padded full-size tensor per piece.
#include "autograd/grad_mode.hpp"
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::Node;
using autograd::set_history;

namespace {

struct ConcatBackward : Node {
  int64_t dim;
  std::vector<int64_t> sizes;  // of each input along dim
  const char* name() const override { return "ConcatBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    std::vector<Tensor> out(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs_input_grad(i)) out[i] = grads[0].narrow(dim, start, sizes[i]);
      start += sizes[i];
    }
    return out;
  }
};

struct SplitBackward : Node {
  Shape input_shape;
  int64_t dim;
  std::vector<int64_t> sizes;
  const char* name() const override { return "SplitBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    const Tensor& any = first_defined(grads);
    std::vector<Tensor> pieces(grads.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].defined()) {
        pieces[i] = grads[i];
      } else {  // no gradient flowed into this piece
        Shape s = input_shape;
        s[size_t(dim)] = sizes[i];
        pieces[i] = zeros(s, any.dtype(), any.device());
      }
    }
    return {concat(pieces, dim)};
  }
  static const Tensor& first_defined(const std::vector<Tensor>& grads) {
    for (const Tensor& g : grads)
      if (g.defined()) return g;
    LD_ASSERT(false, "SplitBackward called without any gradient");
  }
};

void check_concat_inputs(const std::vector<Tensor>& tensors, int64_t dim, const char* op) {
  const Tensor& first = tensors[0];
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    LD_CHECK(t.defined(), op, ": tensor ", i, " is undefined");
    LD_CHECK(t.dtype() == first.dtype(), op, ": tensor ", i, " is ", dtype_name(t.dtype()), " but tensor 0 is ",
             dtype_name(first.dtype()));
    check_same_device(first, t, op);
    bool same = t.dim() == first.dim();
    for (int64_t d = 0; same && d < t.dim(); ++d) same = d == dim || t.size(d) == first.size(d);
    LD_CHECK(same, op, ": tensor ", i, " has shape ", shape_str(t.shape()), " but tensor 0 has shape ",
             shape_str(first.shape()), "; all dims except dim ", dim, " must match");
  }
}

}  // namespace

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  LD_CHECK(!tensors.empty(), "concat: no tensors given");
  LD_CHECK(tensors[0].defined(), "concat: tensor 0 is undefined");
  LD_CHECK(tensors[0].dim() > 0, "concat: cannot concatenate scalars (shape []); use stack");
  dim = wrap_dim(dim, tensors[0].dim(), "concat");
  check_concat_inputs(tensors, dim, "concat");

  Shape shape = tensors[0].shape();
  std::vector<int64_t> sizes;
  shape[size_t(dim)] = 0;
  for (const Tensor& t : tensors) {
    sizes.push_back(t.size(dim));
    shape[size_t(dim)] += t.size(dim);
  }
  Tensor out = empty(shape, tensors[0].dtype(), tensors[0].device());
  {
    autograd::NoGradGuard no_grad;
    int64_t start = 0;
    for (const Tensor& t : tensors) {
      out.narrow(dim, start, t.size(dim)).copy_(t);
      start += t.size(dim);
    }
  }
  if (auto node = autograd::make_node<ConcatBackward>(std::span<const Tensor>(tensors))) {
    node->dim = dim;
    node->sizes = std::move(sizes);
    set_history(out, node);
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  LD_CHECK(x.defined(), "split: x is undefined");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    LD_CHECK(s >= 0, "split: negative size ", s, " in sizes ", shape_str(sizes));
    total += s;
  }
  LD_CHECK(total == x.size(dim), "split: sizes ", shape_str(sizes), " sum to ", total, " but dim ", dim, " of x ",
           shape_str(x.shape()), " has size ", x.size(dim));

  auto node = autograd::make_node<SplitBackward>({x});
  if (node) {
    node->num_outputs = uint32_t(sizes.size());
    node->input_shape = x.shape();
    node->dim = dim;
    node->sizes = sizes;
  }
  std::vector<Tensor> pieces;
  Tensor base = x.detach();
  int64_t start = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    pieces.push_back(base.narrow(dim, start, sizes[i]));
    set_history(pieces.back(), node, uint32_t(i));
    start += sizes[i];
  }
  return pieces;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  LD_CHECK(!tensors.empty(), "stack: no tensors given");
  for (size_t i = 0; i < tensors.size(); ++i) {
    LD_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    LD_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " has shape ",
             shape_str(tensors[i].shape()), " but tensor 0 has shape ", shape_str(tensors[0].shape()),
             "; all must match");
  }
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (const Tensor& t : tensors) expanded.push_back(t.unsqueeze(dim));
  return concat(expanded, dim);
}

}  // namespace ld::ops
