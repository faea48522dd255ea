// Sums and means over dims, the reduction that undoes broadcasting, argmax and top-k.
#include <algorithm>

#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

// Sum of a contiguous tensor over one dim, keeping it as size 1.
Tensor sum_one_dim(const Tensor& x, int64_t d) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape()[size_t(i)];
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.shape()[size_t(i)];
  Shape s = x.shape();
  s[size_t(d)] = 1;
  Tensor out = empty(s, DType::f32, x.device());
  x.backend().reduce_sum(outer, x.shape()[size_t(d)], inner, x.data<float>(), out.data<float>());
  return out;
}

struct SumBackward : Node {
  Shape input_shape, kept_shape;  // kept_shape: the output with reduced dims as 1
  double factor;
  SumBackward(Shape in, Shape kept, double f) : input_shape(std::move(in)), kept_shape(std::move(kept)), factor(f) {}
  const char* name() const override { return "SumBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor g = grads[0].reshape(kept_shape);
    if (factor != 1.0) g = scale(g, factor);
    return {g.expand(input_shape)};
  }
};

std::vector<int64_t> normalise_dims(std::vector<int64_t> dims, int64_t ndim, const char* op) {
  for (auto& d : dims) d = wrap_dim(d, ndim, op);
  std::sort(dims.begin(), dims.end());
  LD_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op, ": a dim is repeated");
  return dims;
}

Tensor reduce(const Tensor& input, std::vector<int64_t> dims, bool keepdim, bool is_mean, const char* op) {
  detail::check_f32(input, op, "x");
  dims = normalise_dims(std::move(dims), input.dim(), op);
  Tensor acc = input.contiguous().detach();
  int64_t count = 1;
  for (int64_t d : dims) {
    count *= input.shape()[size_t(d)];
    acc = sum_one_dim(acc, d);
  }
  if (is_mean && count > 0) acc.backend().affine(acc.numel(), acc.data<float>(), float(1.0 / double(count)), 0.0f, acc.data<float>());
  Shape kept = acc.shape();
  Shape out_shape;
  for (int64_t i = 0; i < input.dim(); ++i)
    if (keepdim || !std::binary_search(dims.begin(), dims.end(), i)) out_shape.push_back(kept[size_t(i)]);
  Tensor out = acc.view(out_shape).detach();
  set_history(out, make_node<SumBackward>({input}, input.shape(), kept, is_mean && count > 0 ? 1.0 / double(count) : 1.0));
  return out;
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(static_cast<size_t>(x.dim()));
  for (size_t i = 0; i < d.size(); ++i) d[i] = int64_t(i);
  return d;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return reduce(x, std::move(dims), keepdim, false, "sum"); }
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return reduce(x, std::move(dims), keepdim, true, "mean"); }
Tensor sum(const Tensor& x) { return sum(x, all_dims(x), false); }
Tensor mean(const Tensor& x) { return mean(x, all_dims(x), false); }

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  LD_CHECK(x.dim() >= int64_t(shape.size()), "sum_to_shape: cannot reduce ", shape_str(x.shape()), " to ", shape_str(shape));
  size_t lead = size_t(x.dim()) - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < size_t(x.dim()); ++i)
    if (i < lead || (shape[i - lead] == 1 && x.shape()[i] != 1)) dims.push_back(int64_t(i));
  return sum(x, dims, true).reshape(shape);
}

Tensor argmax(const Tensor& input, int64_t dim) {
  detail::check_f32(input, "argmax", "x");
  LD_CHECK(input.numel() > 0, "argmax: empty tensor of shape ", shape_str(input.shape()));
  dim = wrap_dim(dim, input.dim(), "argmax");
  Tensor x = input.dim() == 0 ? input.reshape({1}) : input.transpose(dim, -1).contiguous().detach();
  Shape out_shape = x.shape();
  out_shape.pop_back();
  Tensor out = empty(out_shape, DType::i64, x.device());
  x.backend().argmax(detail::rows_of(x), x.shape().back(), x.data<float>(), out.data<int64_t>());
  if (input.dim() > 1 && dim != input.dim() - 1) {  // move the other dims back into order
    Shape s = input.shape();
    s.erase(s.begin() + dim);
    // x's layout is input with dims `dim` and last swapped; after dropping the last, the old last
    // dim sits where `dim` was.
    std::vector<int64_t> perm;
    for (int64_t i = 0; i < input.dim() - 1; ++i) perm.push_back(i);
    if (dim < input.dim() - 1) {
      perm.erase(perm.begin() + dim);
      perm.push_back(dim);
    }
    out = out.permute(perm).contiguous();
  }
  return out;
}

namespace {
struct TopKBackward : Node {
  Tensor indices;  // [rows, k] i64, contiguous, in the last-dim layout
  Shape moved_shape;  // input shape with dim moved last
  int64_t dim;
  const char* name() const override { return "TopKBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor g = grads[0].transpose(dim, -1).contiguous();
    Tensor out = zeros(moved_shape, DType::f32, g.device());
    int64_t cols = moved_shape.back(), k = g.shape().back();
    g.backend().scatter_add_rows(g.numel() / std::max<int64_t>(k, 1), cols, k, indices.data<int64_t>(),
                                 g.data<float>(), out.data<float>());
    return {out.transpose(dim, -1)};
  }
  void release() override { indices = Tensor(); }
};
}  // namespace

TopK topk(const Tensor& input, int64_t k, int64_t dim) {
  detail::check_f32(input, "topk", "x");
  LD_CHECK(input.dim() >= 1, "topk: needs at least 1 dim, got a scalar");
  dim = wrap_dim(dim, input.dim(), "topk");
  int64_t n = input.shape()[size_t(dim)];
  LD_CHECK(k >= 0 && k <= n, "topk: k=", k, " out of range for dim ", dim, " of size ", n, " (shape ",
           shape_str(input.shape()), ")");
  Tensor x = input.transpose(dim, -1).contiguous().detach();
  Shape s = x.shape();
  s.back() = k;
  Tensor values = empty(s, DType::f32, x.device());
  Tensor indices = empty(s, DType::i64, x.device());
  x.backend().topk(detail::rows_of(x), n, k, x.data<float>(), values.data<float>(), indices.data<int64_t>());
  Tensor v = values.transpose(dim, -1);
  if (auto node = make_node<TopKBackward>({input})) {
    node->indices = indices;
    node->moved_shape = x.shape();
    node->dim = dim;
    set_history(v, node);
  }
  return {v, indices.transpose(dim, -1)};
}

}  // namespace ld::ops
