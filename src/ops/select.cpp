// Elementwise selection (where, masked_fill) and the fused SwiGLU gate of LLaMA-style MLPs.
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

void check_mask(const Tensor& mask, const char* op, const char* arg) {
  LD_CHECK(mask.defined(), op, ": ", arg, " is undefined");
  check_dtype(mask, DType::u8, op, arg);
}

Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape) {
  Tensor out = empty(shape, DType::f32, a.device());
  Shape cs = detail::broadcast_strides(cond, shape), as = detail::broadcast_strides(a, shape),
        bs = detail::broadcast_strides(b, shape);
  a.backend().where(int(shape.size()), shape.data(), cond.data<uint8_t>(), cs.data(), a.data<float>(), as.data(),
                    b.data<float>(), bs.data(), out.data<float>());
  return out;
}

struct WhereBackward : Node {
  Tensor cond;  // detached
  Shape a_shape, b_shape;
  const char* name() const override { return "WhereBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    Tensor zero = zeros({}, DType::f32, g.device());
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = sum_to_shape(where(cond, g, zero), a_shape);
    if (needs_input_grad(1)) gb = sum_to_shape(where(cond, zero, g), b_shape);
    return {ga, gb};
  }
  void release() override { cond = Tensor(); }
};

struct SwigluBackward : Node {
  Tensor gate, up;  // contiguous, detached
  const char* name() const override { return "SwigluBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor dout = grads[0].contiguous();
    Tensor dgate = empty(gate.shape(), DType::f32, gate.device());
    Tensor dup = empty(up.shape(), DType::f32, up.device());
    gate.backend().swiglu_backward(gate.numel(), gate.data<float>(), up.data<float>(), dout.data<float>(),
                                   dgate.data<float>(), dup.data<float>());
    return {needs_input_grad(0) ? dgate : Tensor(), needs_input_grad(1) ? dup : Tensor()};
  }
  void release() override { gate = up = Tensor(); }
};

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_mask(cond, "where", "cond");
  detail::check_f32(a, "where", "a");
  detail::check_f32(b, "where", "b");
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = where_forward(cond, a, b, shape);
  if (auto node = make_node<WhereBackward>({a, b})) {
    node->cond = cond.detach();
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    set_history(out, node);
  }
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_mask(mask, "masked_fill", "mask");
  detail::check_f32(x, "masked_fill", "x");
  LD_CHECK(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(), "masked_fill: mask ",
           shape_str(mask.shape()), " does not broadcast to x ", shape_str(x.shape()));
  return where(mask, full({}, value, DType::f32, x.device()), x);
}

Tensor swiglu(const Tensor& gate_in, const Tensor& up_in) {
  detail::check_f32(gate_in, "swiglu", "gate");
  detail::check_f32(up_in, "swiglu", "up");
  check_same_device(gate_in, up_in, "swiglu");
  LD_CHECK(gate_in.shape() == up_in.shape(), "swiglu: gate ", shape_str(gate_in.shape()), " and up ",
           shape_str(up_in.shape()), " must have the same shape");
  Tensor gate = gate_in.detach().contiguous(), up = up_in.detach().contiguous();
  Tensor out = empty(gate.shape(), DType::f32, gate.device());
  gate.backend().swiglu_forward(gate.numel(), gate.data<float>(), up.data<float>(), out.data<float>());
  if (auto node = make_node<SwigluBackward>({gate_in, up_in})) {
    node->gate = gate;
    node->up = up;
    set_history(out, node);
  }
  return out;
}

}  // namespace ld::ops
