// Scaled-dot-product attention on the backend's flash kernels: the forward saves the output and a
// log-sum-exp per query, the backward recomputes the probabilities tile by tile from them.
#include <cmath>
#include <limits>

#include "ops/autocast.hpp"
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

// The kernels read each row of D floats as contiguous; anything else is copied once.
Tensor with_unit_last_stride(const Tensor& t) {
  return t.size(3) <= 1 || t.stride(3) == 1 ? t : t.contiguous();
}

void copy_strides(int64_t (&dst)[3], const Tensor& t) {
  for (int i = 0; i < 3; ++i) dst[i] = t.stride(i);
}

std::string shapes_str(const Tensor& q, const Tensor& k, const Tensor& v) {
  return "q " + shape_str(q.shape()) + ", k " + shape_str(k.shape()) + ", v " + shape_str(v.shape());
}

void check_inputs(const Tensor& q, const Tensor& k, const Tensor& v) {
  detail::check_f32(q, "attention", "q");
  detail::check_f32(k, "attention", "k");
  detail::check_f32(v, "attention", "v");
  check_same_device(q, k, "attention");
  check_same_device(q, v, "attention");
  LD_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
           "attention: q, k and v must be 4-D [B, H, T, D], got ", shapes_str(q, k, v));
  LD_CHECK(k.shape() == v.shape(), "attention: k and v must have the same shape, got ", shapes_str(q, k, v));
  LD_CHECK(q.size(0) == k.size(0), "attention: batch sizes differ (", q.size(0), " vs ", k.size(0), "): ",
           shapes_str(q, k, v));
  LD_CHECK(q.size(3) == k.size(3), "attention: head dims differ (", q.size(3), " vs ", k.size(3), "): ",
           shapes_str(q, k, v));
  LD_CHECK(k.size(1) > 0 ? q.size(1) % k.size(1) == 0 : q.size(1) == 0, "attention: query heads (", q.size(1),
           ") must be a multiple of key/value heads (", k.size(1), "): ", shapes_str(q, k, v));
}

// The mask as an additive f32 tensor (a boolean one becomes 0 where kept, -inf elsewhere), in its
// own shape; the kernel reads it through broadcast strides.
Tensor additive_mask(const Tensor& mask, const Shape& scores_shape) {
  LD_CHECK(mask.dtype() == DType::f32 || mask.dtype() == DType::u8, "attention: mask must be f32 (additive) or u8 ",
           "(1 = keep), got ", dtype_name(mask.dtype()), " (shape ", shape_str(mask.shape()), ")");
  bool broadcasts = mask.dim() <= 4;
  for (int64_t i = 1; broadcasts && i <= mask.dim(); ++i) {
    int64_t m = mask.size(-i), s = scores_shape[size_t(4 - i)];
    broadcasts = m == 1 || m == s;
  }
  LD_CHECK(broadcasts, "attention: mask ", shape_str(mask.shape()), " does not broadcast to the scores ",
           shape_str(scores_shape), " [B, H, Tq, Tk]");
  Tensor m = mask.detach();
  if (m.dtype() == DType::u8)
    m = where(m, zeros({}, DType::f32, m.device()),
              full({}, -std::numeric_limits<double>::infinity(), DType::f32, m.device()));
  return m;
}

AttentionArgs make_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal,
                        double scale) {
  AttentionArgs a;
  a.batch = q.size(0), a.q_heads = q.size(1), a.q_len = q.size(2), a.head_dim = q.size(3);
  a.kv_heads = k.size(1), a.kv_len = k.size(2);
  a.scale = float(scale);
  a.causal = causal;
  a.allow_bf16 = autocast_precision() == ComputePrecision::bf16;  // tensor cores may round as a bf16 GEMM does
  copy_strides(a.q_stride, q);
  copy_strides(a.k_stride, k);
  copy_strides(a.v_stride, v);
  if (mask.defined()) {
    Shape st = detail::broadcast_strides(mask, {a.batch, a.q_heads, a.q_len, a.kv_len});
    for (int i = 0; i < 4; ++i) a.mask_stride[i] = st[size_t(i)];
    a.mask = mask.data<float>();
  }
  return a;
}

// Output memory is [B, Tq, Hq, D] (what the output projection reads), seen as [B, Hq, Tq, D].
Tensor output_like(const AttentionArgs& a, Device device) {
  return empty({a.batch, a.q_len, a.q_heads, a.head_dim}, DType::f32, device).permute({0, 2, 1, 3});
}

struct AttentionBackward : Node {
  Tensor q, k, v, out, lse, mask;  // detached; q, k, v with unit last stride; mask additive f32
  AttentionArgs args;
  const char* name() const override { return "AttentionBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    // The kernel reads dout with the output's strides.
    Tensor dout = grads[0];
    bool same_layout = dout.stride(3) == 1 || dout.size(3) <= 1;
    for (int i = 0; i < 3; ++i) same_layout = same_layout && (dout.size(i) <= 1 || dout.stride(i) == out.stride(i));
    if (!same_layout) dout = output_like(args, out.device()).copy_(dout);
    AttentionArgs a = args;
    copy_strides(a.o_stride, out);
    if (mask.defined()) a.mask = mask.data<float>();
    Tensor dq = empty(q.shape(), DType::f32, q.device());
    Tensor dk = empty(k.shape(), DType::f32, k.device());
    Tensor dv = empty(v.shape(), DType::f32, v.device());
    q.backend().attention_backward(a, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                   dout.data<float>(), lse.data<float>(), dq.data<float>(), dk.data<float>(),
                                   dv.data<float>());
    return {needs_input_grad(0) ? dq : Tensor(), needs_input_grad(1) ? dk : Tensor(),
            needs_input_grad(2) ? dv : Tensor()};
  }
  void release() override { q = k = v = out = lse = mask = Tensor(); }
};

}  // namespace

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const AttentionOptions& options) {
  check_inputs(q_in, k_in, v_in);
  Tensor q = with_unit_last_stride(q_in.detach()), k = with_unit_last_stride(k_in.detach()),
         v = with_unit_last_stride(v_in.detach());
  Tensor mask;
  if (options.mask.defined()) {
    check_same_device(q, options.mask, "attention");
    mask = additive_mask(options.mask, {q.size(0), q.size(1), q.size(2), k.size(2)});
  }
  double scale = options.scale.value_or(q.size(3) > 0 ? 1.0 / std::sqrt(double(q.size(3))) : 1.0);
  AttentionArgs a = make_args(q, k, v, mask, options.causal, scale);
  Tensor out = output_like(a, q.device());
  copy_strides(a.o_stride, out);
  Tensor lse = empty({a.batch, a.q_heads, a.q_len}, DType::f32, q.device());
  q.backend().attention_forward(a, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                lse.data<float>());
  if (auto node = make_node<AttentionBackward>({q_in, k_in, v_in})) {
    node->q = q, node->k = k, node->v = v;
    node->out = out.detach();
    node->lse = lse;
    node->mask = mask;
    node->args = a;
    set_history(out, node);
  }
  return out;
}

}  // namespace ld::ops
