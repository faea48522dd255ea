// Broadcasting binary ops, unary activations and scalar affine ops with their backward rules.
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace detail {
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  size_t lead = shape.size() - size_t(t.dim());
  for (size_t i = 0; i < size_t(t.dim()); ++i) st[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}
}  // namespace detail

namespace {

Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  detail::check_f32(a, name, "a");
  detail::check_f32(b, name, "b");
  check_same_device(a, b, name);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, DType::f32, a.device());
  Shape as = detail::broadcast_strides(a, shape), bs = detail::broadcast_strides(b, shape);
  a.backend().binary(op, int(shape.size()), shape.data(), a.data<float>(), as.data(), b.data<float>(), bs.data(),
                     out.data<float>());
  return out;
}

struct BinaryBackward : Node {
  BinaryOp op;
  Tensor a, b, out;  // saved as needed by the rule
  Shape a_shape, b_shape;
  const char* name() const override { return "BinaryBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::add:
        ga = g, gb = g;
        break;
      case BinaryOp::sub:
        ga = g, gb = needs_input_grad(1) ? neg(g) : Tensor();
        break;
      case BinaryOp::mul:
        if (needs_input_grad(0)) ga = mul(g, b);
        if (needs_input_grad(1)) gb = mul(g, a);
        break;
      case BinaryOp::div:
        if (needs_input_grad(0)) ga = div(g, b);
        if (needs_input_grad(1)) gb = neg(div(mul(g, out), b));
        break;
    }
    return {needs_input_grad(0) ? sum_to_shape(ga, a_shape) : Tensor(),
            needs_input_grad(1) ? sum_to_shape(gb, b_shape) : Tensor()};
  }
  void release() override { a = b = out = Tensor(); }
};

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(op, a, b);
  if (auto node = make_node<BinaryBackward>({a, b})) {
    node->op = op;
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    if (op == BinaryOp::mul || op == BinaryOp::div) {
      node->a = a.detach();
      node->b = b.detach();
    }
    if (op == BinaryOp::div) node->out = out.detach();
    set_history(out, node);
  }
  return out;
}

// Which of x and y the op's derivative reads (backend.hpp, unary_backward). A switch over every op,
// so that a new one cannot go unclassified (-Wswitch).
enum class GradReads { input, output, nothing };
GradReads grad_reads(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return GradReads::nothing;
    case UnaryOp::exp:
    case UnaryOp::sqrt:
    case UnaryOp::tanh:
    case UnaryOp::sigmoid: return GradReads::output;
    case UnaryOp::log:
    case UnaryOp::relu:
    case UnaryOp::gelu_tanh:
    case UnaryOp::gelu_erf:
    case UnaryOp::silu: return GradReads::input;
  }
  return GradReads::input;
}

// Keeps alive only what the derivative reads: a GELU keeps its input, not also its output (which
// the next projection may keep in 16 bits under autocast).
struct UnaryBackward : Node {
  UnaryOp op;
  Tensor x, y;  // each undefined unless the derivative reads it
  const char* name() const override { return "UnaryBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor g = grads[0].contiguous();
    Tensor dx = empty(g.shape(), DType::f32, g.device());
    g.backend().unary_backward(op, g.numel(), x.defined() ? x.data<float>() : nullptr,
                               y.defined() ? y.data<float>() : nullptr, g.data<float>(), dx.data<float>());
    return {dx};
  }
  void release() override { x = y = Tensor(); }
};

Tensor unary(UnaryOp op, const Tensor& input, const char* name) {
  detail::check_f32(input, name, "x");
  Tensor x = input.contiguous();
  Tensor y = empty(x.shape(), DType::f32, x.device());
  x.backend().unary(op, x.numel(), x.data<float>(), y.data<float>());
  if (auto node = make_node<UnaryBackward>({x})) {
    node->op = op;
    if (grad_reads(op) == GradReads::input) node->x = x.detach();
    if (grad_reads(op) == GradReads::output) node->y = y.detach();
    set_history(y, node);
  }
  return y;
}

struct AffineBackward : Node {
  double alpha;
  explicit AffineBackward(double a) : alpha(a) {}
  const char* name() const override { return "AffineBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    return {alpha == 1.0 ? grads[0] : scale(grads[0], alpha)};
  }
};

Tensor affine(const Tensor& input, double alpha, double beta, const char* name) {
  detail::check_f32(input, name, "x");
  Tensor x = input.contiguous();
  Tensor y = empty(x.shape(), DType::f32, x.device());
  x.backend().affine(x.numel(), x.data<float>(), float(alpha), float(beta), y.data<float>());
  set_history(y, make_node<AffineBackward>({x}, alpha));
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }

Tensor scale(const Tensor& x, double alpha) { return affine(x, alpha, 0.0, "scale"); }
Tensor add_scalar(const Tensor& x, double value) { return affine(x, 1.0, value, "add_scalar"); }

Tensor neg(const Tensor& x) { return unary(UnaryOp::neg, x, "neg"); }
Tensor exp(const Tensor& x) { return unary(UnaryOp::exp, x, "exp"); }
Tensor log(const Tensor& x) { return unary(UnaryOp::log, x, "log"); }
Tensor sqrt(const Tensor& x) { return unary(UnaryOp::sqrt, x, "sqrt"); }
Tensor tanh(const Tensor& x) { return unary(UnaryOp::tanh, x, "tanh"); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryOp::sigmoid, x, "sigmoid"); }
Tensor relu(const Tensor& x) { return unary(UnaryOp::relu, x, "relu"); }
Tensor silu(const Tensor& x) { return unary(UnaryOp::silu, x, "silu"); }
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return unary(tanh_approximation ? UnaryOp::gelu_tanh : UnaryOp::gelu_erf, x, tanh_approximation ? "gelu_tanh" : "gelu_erf");
}

}  // namespace ld::ops
