#include "ops/projection_gemm.hpp"

#include <algorithm>

#include "ops/working_weights.hpp"

namespace ld::ops::detail {

Tensor rounded_operand(const Tensor& t, ComputePrecision p) {
  Tensor r = empty(t.shape(), half_dtype(p), t.device());
  r.copy_(t);
  return r;
}

Rows::Rows(const Tensor& full, const Tensor& rounded) : keep(rounded.defined() ? rounded : full) {
  if (rounded.defined())
    half = static_cast<const uint16_t*>(rounded.raw());
  else
    f32 = full.data<float>();
}

namespace {
void set_a(GemmArgs& g, const Rows& r) { g.a = r.f32, g.a_half = r.half; }
void set_b(GemmArgs& g, const Rows& r) { g.b = r.f32, g.b_half = r.half; }

void set_weight(GemmArgs& g, const Tensor& weight, const ProjectionGemms& s) {
  g.b_half = s.working_weights ? working_weight(weight, s.precision) : nullptr;
  g.b = g.b_half != nullptr ? nullptr : weight.data<float>();
}
}  // namespace

GemmArgs ProjectionGemms::forward(const Rows& x, const Tensor& weight, float* y) const {
  const bool kn = layout == WeightLayout::in_out;
  GemmArgs g;  // Y[N,out] = X[N,in] W^T, or X W for W [in,out]
  g.trans_b = !kn;
  g.m = rows, g.n = out, g.k = in;
  set_a(g, x), g.lda = std::max<int64_t>(in, 1);
  set_weight(g, weight, *this), g.ldb = std::max<int64_t>(kn ? out : in, 1);
  g.c = y, g.ldc = std::max<int64_t>(out, 1);
  g.precision = precision;
  return g;
}

GemmArgs ProjectionGemms::input_grad(const Rows& grad, const Tensor& weight, float* dx) const {
  const bool kn = layout == WeightLayout::in_out;
  GemmArgs g;  // dX[N,in] = G[N,out] W[out,in], or G W^T for W [in,out]
  g.trans_b = kn;
  g.m = rows, g.n = in, g.k = out;
  set_a(g, grad), g.lda = out, g.ldb = kn ? out : in;
  set_weight(g, weight, *this);
  g.c = dx, g.ldc = in;
  g.precision = precision;
  return g;
}

GemmArgs ProjectionGemms::weight_grad(const Rows& grad, const Rows& x, float* dw) const {
  const bool kn = layout == WeightLayout::in_out;
  GemmArgs g;  // dW[out,in] = G^T[out,N] X[N,in], or X^T G for W [in,out]
  g.trans_a = true;
  g.m = kn ? in : out, g.n = kn ? out : in, g.k = rows;
  set_a(g, kn ? x : grad), g.lda = kn ? in : out;
  set_b(g, kn ? grad : x), g.ldb = kn ? out : in;
  g.c = dw, g.ldc = g.n;
  g.precision = precision;
  return g;
}

ProjectionGrads projection_grads(const ProjectionGemms& s, const Tensor& g, const Tensor& x2, const Tensor& x16,
                                 const Tensor& weight, bool want_dx, bool want_dw, bool want_db,
                                 GemmEpilogue dx_epilogue, const Tensor& aux) {
  Backend& be = g.backend();
  // Both products read G: rounded once.
  const bool round_g = s.precision != ComputePrecision::f32 && want_dx && want_dw;
  const Rows gr(g, round_g ? rounded_operand(g, s.precision) : Tensor());
  ProjectionGrads r;
  if (want_dx) {
    r.dx = empty({s.rows, s.in}, DType::f32, g.device());
    GemmArgs a = s.input_grad(gr, weight, r.dx.data<float>());
    a.epilogue = dx_epilogue;
    if (dx_epilogue != GemmEpilogue::none) a.aux = aux.data<float>();
    be.gemm(a);
  }
  if (want_dw) {
    const bool kn = s.layout == WeightLayout::in_out;
    r.dw = empty(kn ? Shape{s.in, s.out} : Shape{s.out, s.in}, DType::f32, g.device());
    be.gemm(s.weight_grad(gr, Rows(x2, x16), r.dw.data<float>()));
  }
  if (want_db) {
    r.db = empty({s.out}, DType::f32, g.device());
    be.reduce_sum(1, s.rows, s.out, g.data<float>(), r.db.data<float>());
  }
  return r;
}

}  // namespace ld::ops::detail
