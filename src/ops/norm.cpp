// LayerNorm and RMSNorm over the last dim, plain or fused with the residual add of a pre-norm block
// (one node, two outputs: the sum and its norm). The forward saves mean/rstd per row; the backward
// runs the fused backward kernel on them (never recomputing the statistics).
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

enum class NormKind { layer, rms };

// Rows as the product of the leading dims (safe when the last dim is 0).
int64_t leading_rows(const Tensor& x) {
  int64_t rows = 1;
  for (int64_t i = 0; i + 1 < x.dim(); ++i) rows *= x.shape()[size_t(i)];
  return rows;
}

void check_norm_args(const char* op, const Tensor& x, const Tensor& residual, const Tensor& weight,
                     const Tensor& bias) {
  detail::check_f32(x, op, "x");
  LD_CHECK(x.dim() >= 1, op, ": x must have at least 1 dim, got a scalar");
  if (residual.defined()) {
    detail::check_f32(residual, op, "residual");
    LD_CHECK(residual.shape() == x.shape(), op, ": residual ", shape_str(residual.shape()), " does not match x ",
             shape_str(x.shape()));
    check_same_device(x, residual, op);
  }
  detail::check_f32(weight, op, "weight");
  LD_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), op, ": weight ", shape_str(weight.shape()),
           " does not match the last dim of x ", shape_str(x.shape()), " (expected [", x.size(-1), "])");
  check_same_device(x, weight, op);
  if (bias.defined()) {
    detail::check_f32(bias, op, "bias");
    LD_CHECK(bias.dim() == 1 && bias.size(0) == x.size(-1), op, ": bias ", shape_str(bias.shape()),
             " does not match the last dim of x ", shape_str(x.shape()), " (expected [", x.size(-1), "])");
    check_same_device(x, bias, op);
  }
}

struct NormBackward : Node {
  NormKind kind = NormKind::layer;
  bool fused = false;     // outputs are (sum, normed) and inputs (x, residual, weight[, bias])
  bool has_bias = false;  // layernorm only
  Tensor input;           // what was normalised (x, or the sum), contiguous
  Tensor weight, mean, rstd;

  const char* name() const override {
    if (kind == NormKind::layer) return fused ? "AddLayerNormBackward" : "LayerNormBackward";
    return fused ? "AddRmsNormBackward" : "RmsNormBackward";
  }

  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    LD_CHECK(input.defined(), name(), ": saved tensors were freed by an earlier backward; pass retain_graph=true to "
             "backward through the graph twice");
    const Tensor& grad_sum = fused ? grads[0] : Tensor();
    const Tensor& grad_normed = fused ? grads[1] : grads[0];
    const size_t weight_slot = fused ? 2 : 1;
    Tensor dx, dw, db;
    if (grad_normed.defined()) {
      Tensor g = grad_normed.contiguous();
      Backend& be = g.backend();
      const int64_t cols = weight.size(0), rows = cols == 0 ? 0 : input.numel() / cols;
      dx = empty(input.shape(), DType::f32, g.device());
      dw = empty({cols}, DType::f32, g.device());
      if (kind == NormKind::layer) {
        db = empty({cols}, DType::f32, g.device());
        be.layernorm_backward(rows, cols, g.data<float>(), input.data<float>(), weight.data<float>(),
                              mean.data<float>(), rstd.data<float>(), dx.data<float>(), dw.data<float>(),
                              db.data<float>());
      } else {
        be.rmsnorm_backward(rows, cols, g.data<float>(), input.data<float>(), weight.data<float>(),
                            rstd.data<float>(), dx.data<float>(), dw.data<float>());
      }
      if (grad_sum.defined()) {  // dx += grad_sum, in place, reading grad_sum through its strides
        Shape dx_strides = contiguous_strides(dx.shape());
        be.binary(BinaryOp::add, int(dx.dim()), dx.shape().data(), dx.data<float>(), dx_strides.data(),
                  grad_sum.data<float>(), grad_sum.strides().data(), dx.data<float>());
      }
    } else {
      dx = grad_sum;  // only the sum output was used downstream
    }
    std::vector<Tensor> out;
    out.push_back(dx);
    if (fused) out.push_back(dx);
    out.push_back(needs_input_grad(weight_slot) ? dw : Tensor());
    if (kind == NormKind::layer) out.push_back(has_bias && needs_input_grad(weight_slot + 1) ? db : Tensor());
    return out;
  }

  void release() override { input = weight = mean = rstd = Tensor(); }
};

// The forward of all four ops. residual and bias may be undefined.
ResidualNorm norm_forward(NormKind kind, const char* op, const Tensor& x_in, const Tensor& residual_in,
                          const Tensor& weight_in, const Tensor& bias_in, double eps) {
  check_norm_args(op, x_in, residual_in, weight_in, bias_in);
  const bool fused = residual_in.defined();
  const int64_t cols = x_in.size(-1), rows = leading_rows(x_in);
  Tensor x = x_in.detach().contiguous();
  Tensor residual = fused ? residual_in.detach().contiguous() : Tensor();
  Tensor weight = weight_in.detach().contiguous();
  Tensor bias = bias_in.defined() ? bias_in.detach().contiguous() : Tensor();
  const Device dev = x.device();
  Tensor sum = fused ? empty(x.shape(), DType::f32, dev) : Tensor();
  Tensor normed = empty(x.shape(), DType::f32, dev);
  Tensor mean = kind == NormKind::layer ? empty({rows}, DType::f32, dev) : Tensor();
  Tensor rstd = empty({rows}, DType::f32, dev);
  Backend& be = x.backend();
  float* sum_ptr = fused ? sum.data<float>() : nullptr;
  const float* res_ptr = fused ? residual.data<float>() : nullptr;
  if (kind == NormKind::layer) {
    be.layernorm_forward(rows, cols, x.data<float>(), res_ptr, weight.data<float>(),
                         bias.defined() ? bias.data<float>() : nullptr, float(eps), sum_ptr, normed.data<float>(),
                         mean.data<float>(), rstd.data<float>());
  } else {
    be.rmsnorm_forward(rows, cols, x.data<float>(), res_ptr, weight.data<float>(), float(eps), sum_ptr,
                       normed.data<float>(), rstd.data<float>());
  }

  std::shared_ptr<NormBackward> node;
  if (kind == NormKind::layer && fused)
    node = make_node<NormBackward>({x_in, residual_in, weight_in, bias_in});
  else if (kind == NormKind::layer)
    node = make_node<NormBackward>({x_in, weight_in, bias_in});
  else if (fused)
    node = make_node<NormBackward>({x_in, residual_in, weight_in});
  else
    node = make_node<NormBackward>({x_in, weight_in});
  if (node) {
    node->kind = kind;
    node->fused = fused;
    node->has_bias = bias.defined();
    node->input = fused ? sum.detach() : x;  // sum is also an output of node: a detached handle, no cycle
    node->weight = weight;
    node->mean = mean;
    node->rstd = rstd;
    node->num_outputs = fused ? 2 : 1;
    if (fused) {
      set_history(sum, node, 0);
      set_history(normed, node, 1);
    } else {
      set_history(normed, node, 0);
    }
  }
  return {sum, normed};
}

}  // namespace

Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  return norm_forward(NormKind::layer, "layernorm", x, Tensor(), weight, bias, eps).normed;
}

Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps) {
  return norm_forward(NormKind::rms, "rmsnorm", x, Tensor(), weight, Tensor(), eps).normed;
}

ResidualNorm add_layernorm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                           double eps) {
  LD_CHECK(residual.defined(), "add_layernorm: residual is undefined");
  return norm_forward(NormKind::layer, "add_layernorm", x, residual, weight, bias, eps);
}

ResidualNorm add_rmsnorm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps) {
  LD_CHECK(residual.defined(), "add_rmsnorm: residual is undefined");
  return norm_forward(NormKind::rms, "add_rmsnorm", x, residual, weight, Tensor(), eps);
}

}  // namespace ld::ops
