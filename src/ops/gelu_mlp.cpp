// ops::gelu_mlp: fc, tanh GELU, proj in three GEMMs forward and four backward, with no separate pass
// for the GELU or its derivative (ops.hpp). What it keeps for the backward is what the three ops
// would keep: x for dW_fc (16-bit under autocast), the GELU's input (f32), and the hidden activation
// for dW_proj (16-bit under autocast, where it never exists in f32).
#include "autograd/grad_mode.hpp"
#include "ops/autocast.hpp"
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"
#include "ops/projection_gemm.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

struct GeluMlpBackward : Node {
  Tensor x2, x16;           // x for dW_fc, [rows, in]
  Tensor pre;               // the GELU's input, [rows, hidden]
  Tensor hidden, hidden16;  // the GELU's output for dW_proj, [rows, hidden]
  Tensor fc_weight, proj_weight;
  Shape x_shape;
  detail::ProjectionGemms fc, proj;
  const char* name() const override { return "GeluMlpBackward"; }
  // inputs: x, fc_weight, fc_bias, proj_weight, proj_bias
  bool wants_pre_grad() const { return needs_input_grad(0) || needs_input_grad(1) || needs_input_grad(2); }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    const Tensor g = grads[0].reshape({proj.rows, proj.out}).contiguous();
    // d pre = (g W_proj) * gelu'(pre): the GELU's derivative in the product's epilogue
    detail::ProjectionGrads p = detail::projection_grads(proj, g, hidden, hidden16, proj_weight, wants_pre_grad(),
                                                         needs_input_grad(3), needs_input_grad(4),
                                                         GemmEpilogue::dgelu_tanh, pre);
    detail::ProjectionGrads f;
    if (wants_pre_grad())
      f = detail::projection_grads(fc, p.dx, x2, x16, fc_weight, needs_input_grad(0), needs_input_grad(1),
                                   needs_input_grad(2));
    if (f.dx.defined()) f.dx = f.dx.view(x_shape);
    return {f.dx, f.dw, f.db, p.dw, p.db};
  }
  void release() override { x2 = x16 = pre = hidden = hidden16 = fc_weight = proj_weight = Tensor(); }
};

void check_gelu_mlp(const Tensor& x, const Tensor& fc_weight, const Tensor& fc_bias, const Tensor& proj_weight,
                    const Tensor& proj_bias, WeightLayout layout) {
  detail::check_f32(x, "gelu_mlp", "x");
  for (const Tensor* t : {&fc_weight, &proj_weight, &fc_bias, &proj_bias})
    if (t->defined()) {
      detail::check_f32(*t, "gelu_mlp", "a weight or bias");
      check_same_device(x, *t, "gelu_mlp");
    }
  LD_CHECK(fc_weight.dim() == 2 && proj_weight.dim() == 2, "gelu_mlp: weights must be 2-D, got ",
           shape_str(fc_weight.shape()), " and ", shape_str(proj_weight.shape()));
  const bool kn = layout == WeightLayout::in_out;
  const int64_t in = fc_weight.size(kn ? 0 : 1), hidden = fc_weight.size(kn ? 1 : 0);
  LD_CHECK(x.dim() >= 1 && x.size(-1) == in, "gelu_mlp: input ", shape_str(x.shape()), " does not match fc weight ",
           shape_str(fc_weight.shape()));
  LD_CHECK(proj_weight.size(kn ? 0 : 1) == hidden, "gelu_mlp: proj weight ", shape_str(proj_weight.shape()),
           " does not take the fc weight's ", hidden, " outputs");
  LD_CHECK(!fc_bias.defined() || fc_bias.shape() == Shape{hidden}, "gelu_mlp: fc bias ", shape_str(fc_bias.shape()),
           " is not [", hidden, "]");
  const int64_t out = proj_weight.size(kn ? 1 : 0);
  LD_CHECK(!proj_bias.defined() || proj_bias.shape() == Shape{out}, "gelu_mlp: proj bias ",
           shape_str(proj_bias.shape()), " is not [", out, "]");
}

const float* values(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

Tensor gelu_mlp(const Tensor& x, const Tensor& fc_weight_in, const Tensor& fc_bias_in, const Tensor& proj_weight_in,
                const Tensor& proj_bias_in, WeightLayout layout) {
  check_gelu_mlp(x, fc_weight_in, fc_bias_in, proj_weight_in, proj_bias_in, layout);
  const bool kn = layout == WeightLayout::in_out;
  const Tensor fc_weight = fc_weight_in.detach().contiguous(), proj_weight = proj_weight_in.detach().contiguous();
  const Tensor fc_bias = fc_bias_in.defined() ? fc_bias_in.detach().contiguous() : Tensor();
  const Tensor proj_bias = proj_bias_in.defined() ? proj_bias_in.detach().contiguous() : Tensor();
  const int64_t in = fc_weight.size(kn ? 0 : 1), hidden = fc_weight.size(kn ? 1 : 0);
  const int64_t out = proj_weight.size(kn ? 1 : 0);
  const Tensor x2 = x.detach().reshape({-1, in}).contiguous();
  const int64_t rows = x2.size(0);
  const ComputePrecision precision = autocast_precision();
  const bool half = precision != ComputePrecision::f32;
  const detail::ProjectionGemms fc{rows, in, hidden, layout, precision}, proj{rows, hidden, out, layout, precision};
  auto node = make_node<GeluMlpBackward>({x, fc_weight_in, fc_bias_in, proj_weight_in, proj_bias_in});

  const Tensor x16 = node && node->needs_input_grad(1) && half ? detail::rounded_operand(x2, precision) : Tensor();
  Tensor pre = empty({rows, hidden}, DType::f32, x.device());
  Tensor hidden_f32, hidden16;
  if (half)
    hidden16 = empty({rows, hidden}, half_dtype(precision), x.device());
  else
    hidden_f32 = empty({rows, hidden}, DType::f32, x.device());
  GemmArgs g = fc.forward(detail::Rows(x2, x16), fc_weight, half ? nullptr : hidden_f32.data<float>());
  g.bias = values(fc_bias), g.epilogue = GemmEpilogue::gelu_tanh, g.aux = pre.data<float>();
  if (half) g.c_half = static_cast<uint16_t*>(hidden16.raw());
  Backend& be = x.backend();
  be.gemm(g);

  Tensor y = empty({rows, out}, DType::f32, x.device());
  GemmArgs p = proj.forward(detail::Rows(hidden_f32, hidden16), proj_weight, y.data<float>());
  p.bias = values(proj_bias);
  be.gemm(p);
  Shape out_shape = x.shape();
  out_shape.back() = out;
  y = y.view(out_shape);
  if (node) {
    if (node->needs_input_grad(1)) {
      node->x16 = x16;
      if (!half) node->x2 = x2;
    }
    if (node->wants_pre_grad()) {
      node->pre = pre;
      node->proj_weight = proj_weight;
    }
    if (node->needs_input_grad(3)) {
      node->hidden = hidden_f32;
      node->hidden16 = hidden16;
    }
    if (node->needs_input_grad(0)) node->fc_weight = fc_weight;
    node->x_shape = x.shape();
    node->fc = fc, node->proj = proj;
    set_history(y, node);
  }
  return y;
}

}  // namespace ld::ops
