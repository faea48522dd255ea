// matmul (batched, broadcasting, transposed views read in place) and projection (x W^T or x W, + b
// or + an addend; linear is one), both on the backend's gemm; with a bf16 weight
// (infer::to_bf16_weights), forward only on linear_bf16.
// Every product computes in the autocast precision (ops/autocast.hpp) current when its forward ran;
// the backward's products too, as in PyTorch. Under bf16/fp16 a projection rounds an operand that
// two products read only once (GemmArgs::a_half / b_half): x for the forward and dW, which keeps the
// 16-bit x instead of the f32 one, and the output gradient for dX and dW.
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

// How gemm reads one operand: a pointer, leading dimension, transpose flag and batch stride.
struct Operand {
  Tensor keep;  // holds a copy alive when one was needed
  const float* ptr;
  int64_t ld;
  bool trans;
  int64_t batch_stride;
};

// t: [batch..., rows, cols] (already broadcast). Avoid copies for row-major and column-major
// matrices whose batch dims collapse to a single stride.
Operand gemm_operand(const Tensor& t, size_t nbatch) {
  const Shape& s = t.shape();
  const Shape& st = t.strides();
  int64_t rows = s[nbatch], cols = s[nbatch + 1];
  int64_t rs = st[nbatch], cs = st[nbatch + 1];
  bool row_major = (cs == 1 || cols == 1) && rs >= std::max<int64_t>(cols, 1);
  bool col_major = !row_major && (rs == 1 || rows == 1) && cs >= std::max<int64_t>(rows, 1);
  // batch dims: all broadcast (stride 0) or one uniform stride
  int64_t bstride = -1;
  bool uniform = true;
  for (size_t i = nbatch; i-- > 0;) {
    if (s[i] == 1) continue;
    if (bstride < 0) {
      bstride = st[i];
      continue;
    }
    int64_t inner_count = 1;
    for (size_t j = i + 1; j < nbatch; ++j) inner_count *= s[j];
    if (st[i] != bstride * inner_count) uniform = false;
  }
  if (bstride < 0) bstride = 0;
  if ((row_major || col_major) && uniform) {
    return {Tensor(), static_cast<const float*>(t.raw()), row_major ? std::max<int64_t>(rs, 1) : std::max<int64_t>(cs, 1),
            col_major, bstride};
  }
  Tensor c = t.contiguous();
  return {c, c.data<float>(), std::max<int64_t>(cols, 1), false, rows * cols};
}

// Saves only what the wanted gradients read: da needs b, db needs a. A frozen weight b (a LoRA base)
// keeps no activation a alive.
struct MatmulBackward : Node {
  Tensor a, b;
  Shape a_shape, b_shape;
  ComputePrecision precision = ComputePrecision::f32;  // the forward's
  const char* name() const override { return "MatmulBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    AutocastScope forward_precision(precision);
    const Tensor& g = grads[0];
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = sum_to_shape(matmul(g, b.transpose(-1, -2)), a_shape);
    if (needs_input_grad(1)) gb = sum_to_shape(matmul(a.transpose(-1, -2), g), b_shape);
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
};

// a [..., m, k] f32 @ b [k, n] bf16 (a Conv1D's weight after infer::to_bf16_weights): forward only.
Tensor matmul_bf16_weight(const Tensor& a_in, const Tensor& b_in) {
  detail::check_f32(a_in, "matmul", "a");
  check_same_device(a_in, b_in, "matmul");
  LD_CHECK(b_in.dim() == 2 && a_in.dim() >= 2 && a_in.size(-1) == b_in.size(0), "matmul: a bf16 b must be a [K, N] "
           "weight matching a [..., M, K], got ", shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()));
  LD_CHECK(!autograd::grad_enabled() || !autograd::any_requires_grad({a_in, b_in}),
           "matmul: bf16 weights are for inference only (no backward through them); run under NoGradGuard, or "
           "keep f32 weights to train");
  const int64_t k = b_in.size(0), n = b_in.size(1);
  Tensor a = a_in.detach().reshape({-1, k}).contiguous();
  Tensor b = b_in.detach().contiguous();
  Shape out_shape = a_in.shape();
  out_shape.back() = n;
  Tensor out = empty({a.size(0), n}, DType::f32, a.device());
  out.backend().linear_bf16(a.size(0), n, k, a.data<float>(), static_cast<const uint16_t*>(b.raw()), /*w_kn=*/true,
                            out.data<float>(), /*accumulate=*/false);
  return out.view(out_shape);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  if (b_in.defined() && b_in.dtype() == DType::bf16) return matmul_bf16_weight(a_in, b_in);
  detail::check_f32(a_in, "matmul", "a");
  detail::check_f32(b_in, "matmul", "b");
  check_same_device(a_in, b_in, "matmul");
  LD_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "matmul: both operands need at least 2 dims, got ",
           shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  int64_t m = a_in.size(-2), k = a_in.size(-1), n = b_in.size(-1);
  LD_CHECK(b_in.size(-2) == k, "matmul: inner dimensions differ: ", shape_str(a_in.shape()), " @ ",
           shape_str(b_in.shape()), " (", k, " vs ", b_in.size(-2), ")");
  Shape ab(a_in.shape().begin(), a_in.shape().end() - 2), bb(b_in.shape().begin(), b_in.shape().end() - 2);
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  Shape a_shape = batch, b_shape = batch, out_shape = batch;
  a_shape.insert(a_shape.end(), {m, k});
  b_shape.insert(b_shape.end(), {k, n});
  out_shape.insert(out_shape.end(), {m, n});
  Tensor a = a_in.detach().expand(a_shape), b = b_in.detach().expand(b_shape);
  Operand oa = gemm_operand(a, batch.size()), ob = gemm_operand(b, batch.size());
  Tensor out = empty(out_shape, DType::f32, a.device());
  GemmArgs g;
  g.trans_a = oa.trans, g.trans_b = ob.trans;
  g.m = m, g.n = n, g.k = k;
  g.a = oa.ptr, g.lda = oa.ld, g.stride_a = oa.batch_stride;
  g.b = ob.ptr, g.ldb = ob.ld, g.stride_b = ob.batch_stride;
  g.c = out.data<float>(), g.ldc = std::max<int64_t>(n, 1), g.stride_c = m * n;
  g.batch = shape_numel(batch);
  g.precision = autocast_precision();
  out.backend().gemm(g);
  if (auto node = make_node<MatmulBackward>({a_in, b_in})) {
    if (node->needs_input_grad(1)) node->a = a_in.detach();
    if (node->needs_input_grad(0)) node->b = b_in.detach();
    node->a_shape = a_in.shape();
    node->b_shape = b_in.shape();
    node->precision = g.precision;
    set_history(out, node);
  }
  return out;
}

namespace {

// x is saved only when the weight wants a gradient (dW reads it; dx and db do not), so a frozen
// weight keeps no activation alive; under autocast as the 16-bit copy the forward read (x16), else
// as f32 (x2). The weight is saved only when x wants a gradient.
struct ProjectionBackward : Node {
  Tensor x2, x16, weight;  // x as [N, in], contiguous
  Shape x_shape;
  detail::ProjectionGemms gemms;  // with the forward's precision
  const char* name() const override { return "ProjectionBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    const Tensor g = grads[0].reshape({gemms.rows, gemms.out}).contiguous();
    detail::ProjectionGrads r = detail::projection_grads(gemms, g, x2, x16, weight, needs_input_grad(0),
                                                         needs_input_grad(1), needs_input_grad(2));
    if (r.dx.defined()) r.dx = r.dx.view(x_shape);
    return {r.dx, r.dw, r.db, needs_input_grad(3) ? grads[0] : Tensor()};
  }
  void release() override { x2 = x16 = weight = Tensor(); }
};

void check_projection(const Tensor& x, const Tensor& weight, WeightLayout layout, const Tensor& bias,
                      const Tensor& addend) {
  const char* op = layout == WeightLayout::out_in ? "linear" : "projection";
  detail::check_f32(x, op, "x");
  LD_CHECK(weight.dtype() == DType::f32 || weight.dtype() == DType::bf16, op, ": weight must be f32 or bf16, got ",
           dtype_name(weight.dtype()));
  const bool kn = layout == WeightLayout::in_out;
  const char* wanted = kn ? "[in_features, out_features]" : "[out_features, in_features]";
  LD_CHECK(weight.dim() == 2, op, ": weight must be ", wanted, ", got ", shape_str(weight.shape()));
  check_same_device(x, weight, op);
  const int64_t in = weight.size(kn ? 0 : 1), outf = weight.size(kn ? 1 : 0);
  LD_CHECK(x.dim() >= 1 && x.size(-1) == in, op, ": input ", shape_str(x.shape()), " does not match weight ",
           shape_str(weight.shape()), " (last dim must be ", in, ")");
  if (bias.defined()) {
    detail::check_f32(bias, op, "bias");
    LD_CHECK(bias.dim() == 1 && bias.size(0) == outf, op, ": bias ", shape_str(bias.shape()),
             " does not match weight ", shape_str(weight.shape()), " (expected [", outf, "])");
  }
  if (addend.defined()) {
    LD_CHECK(!bias.defined(), op, ": give a bias or an addend, not both");
    detail::check_f32(addend, op, "addend");
    Shape want = x.shape();
    want.back() = outf;
    LD_CHECK(addend.shape() == want, op, ": addend ", shape_str(addend.shape()), " does not match the output ",
             shape_str(want));
  }
}

// The [rows, out] buffer the product writes, and whether it adds to what is there: the addend's own
// storage when nothing else holds it (a fresh projection output), else a copy of it; or fresh
// memory. A bias goes to the GEMM (GemmArgs::bias), except for bf16 weights (linear_bf16), where it
// is broadcast into the buffer first.
Tensor output_buffer(int64_t rows, int64_t outf, const Tensor& bias, bool bias_in_buffer, Tensor& addend,
                     Device device, bool& accumulate) {
  accumulate = addend.defined() || (bias.defined() && bias_in_buffer);
  if (addend.defined()) {
    const bool exclusive =
        addend.is_contiguous() && addend.impl_ptr().use_count() == 1 && addend.storage().use_count() == 1;
    return (exclusive ? addend.detach() : addend.detach().clone()).reshape({rows, outf});
  }
  Tensor out = empty({rows, outf}, DType::f32, device);
  if (bias.defined() && bias_in_buffer) out.copy_(bias.detach());
  return out;
}

}  // namespace

Tensor projection(const Tensor& x, const Tensor& weight_in, WeightLayout layout, const Tensor& bias, Tensor addend) {
  check_projection(x, weight_in, layout, bias, addend);
  const bool kn = layout == WeightLayout::in_out;
  const int64_t in = weight_in.size(kn ? 0 : 1), outf = weight_in.size(kn ? 1 : 0);
  const bool bf16_weight = weight_in.dtype() == DType::bf16;
  LD_CHECK(!bf16_weight || !autograd::grad_enabled() || !autograd::any_requires_grad({x, weight_in, bias, addend}),
           "linear: bf16 weights are for inference only (no backward through them); run under NoGradGuard, or "
           "keep f32 weights to train");
  Tensor x2 = x.detach().reshape({-1, in}).contiguous();
  Tensor weight = weight_in.detach().contiguous();
  const int64_t rows = x2.size(0);
  Shape out_shape = x.shape();
  out_shape.back() = outf;
  bool accumulate = false;
  Tensor out = output_buffer(rows, outf, bias, bf16_weight, addend, x.device(), accumulate);
  if (bf16_weight) {
    out.backend().linear_bf16(rows, outf, in, x2.data<float>(), static_cast<const uint16_t*>(weight.raw()), kn,
                              out.data<float>(), accumulate);
    return out.view(out_shape);
  }
  auto node = make_node<ProjectionBackward>({x, weight_in, bias, addend});
  const detail::ProjectionGemms gemms{rows, in, outf, layout, autocast_precision()};
  // dW reads x again: under autocast the forward rounds it once for both.
  const bool keep_x = node && node->needs_input_grad(1);
  const Tensor x16 = keep_x && gemms.precision != ComputePrecision::f32
                         ? detail::rounded_operand(x2, gemms.precision)
                         : Tensor();
  GemmArgs g = gemms.forward(detail::Rows(x2, x16), weight, out.data<float>());  // (+ Y when accumulating)
  g.beta = accumulate ? 1.0f : 0.0f;
  const Tensor bias_values = bias.defined() ? bias.detach().contiguous() : Tensor();
  if (bias_values.defined()) g.bias = bias_values.data<float>();
  out.backend().gemm(g);
  out = out.view(out_shape);
  if (node) {
    if (keep_x) {
      node->x16 = x16;
      if (!x16.defined()) node->x2 = x2;
    }
    if (node->needs_input_grad(0)) node->weight = weight;
    node->x_shape = x.shape();
    node->gemms = gemms;
    set_history(out, node);
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return projection(x, weight, WeightLayout::out_in, bias);
}

}  // namespace ld::ops
