// softmax and log_softmax over any dim. The kernels work on the last dim; another dim is moved last
// with differentiable views (transpose + contiguous) and the result is handed back as a view in the
// caller's dim order.
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

struct SoftmaxBackward : Node {
  Tensor y;  // the forward's output, contiguous
  bool log = false;
  const char* name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    LD_CHECK(y.defined(), name(), ": saved tensors were freed by an earlier backward; pass retain_graph=true to "
             "backward through the graph twice");
    Tensor g = grads[0].contiguous();
    Tensor dx = empty(y.shape(), DType::f32, y.device());
    const int64_t cols = y.shape().back(), rows = cols == 0 ? 0 : y.numel() / cols;
    y.backend().softmax_backward(rows, cols, y.data<float>(), g.data<float>(), dx.data<float>(), log);
    return {dx};
  }
  void release() override { y = Tensor(); }
};

// Softmax over the last dim of a tensor with at least one dim.
Tensor softmax_last(const Tensor& input, bool log) {
  Tensor x = input.contiguous();
  Tensor y = empty(x.shape(), DType::f32, x.device());
  const int64_t cols = x.shape().back(), rows = cols == 0 ? 0 : x.numel() / cols;
  if (rows > 0) x.backend().softmax_forward(rows, cols, x.data<float>(), y.data<float>(), log);
  if (auto node = make_node<SoftmaxBackward>({x})) {
    node->y = y.detach();
    node->log = log;
    set_history(y, node);
  }
  return y;
}

Tensor softmax_any_dim(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  detail::check_f32(x, op, "x");
  if (x.dim() == 0) {  // a scalar is a row of one
    LD_CHECK(dim == 0 || dim == -1, op, ": dim ", dim, " out of range for a scalar");
    return softmax_last(x.reshape({1}), log).reshape({});
  }
  const int64_t d = wrap_dim(dim, x.dim(), op);
  if (d == x.dim() - 1) return softmax_last(x, log);
  return softmax_last(x.transpose(d, -1), log).transpose(d, -1);
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_any_dim(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_any_dim(x, dim, true); }

}  // namespace ld::ops
