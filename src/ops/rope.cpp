// Rotary position embedding. A rotation's inverse is the rotation by the opposite angle, so the
// backward is the same kernel with inverse = true on the gradient.
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

Tensor rope_apply(const Tensor& x, const Tensor& positions, const RopeOptions& o, int64_t rotary_dim, bool inverse) {
  Tensor xc = x.contiguous();
  Tensor y = empty(xc.shape(), DType::f32, xc.device());
  RopeArgs a;
  a.batch = xc.size(0), a.seq = xc.size(1), a.heads = xc.size(2), a.head_dim = xc.size(3);
  a.rotary_dim = rotary_dim;
  a.positions = positions.data<int64_t>();
  a.pos_batch_stride = positions.dim() == 2 ? positions.size(1) : 0;
  a.theta = o.theta;
  a.layout = o.layout;
  a.inverse = inverse;
  xc.backend().rope(a, xc.data<float>(), y.data<float>());
  return y;
}

struct RopeBackward : Node {
  Tensor positions;  // i64, contiguous
  RopeOptions options;
  int64_t rotary_dim = 0;
  const char* name() const override { return "RopeBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    return {rope_apply(grads[0], positions, options, rotary_dim, true)};
  }
  void release() override { positions = Tensor(); }
};

}  // namespace

Tensor rope(const Tensor& x, const Tensor& positions_in, const RopeOptions& options) {
  detail::check_f32(x, "rope", "x");
  LD_CHECK(positions_in.defined(), "rope: positions is undefined");
  check_same_device(x, positions_in, "rope");
  LD_CHECK(x.dim() == 4, "rope: x must be 4-D [B, T, H, D], got ", shape_str(x.shape()));
  int64_t B = x.size(0), T = x.size(1), D = x.size(3);
  detail::check_index_dtype(positions_in, "rope", "positions");
  bool per_batch = positions_in.dim() == 2 && positions_in.size(0) == B && positions_in.size(1) == T;
  LD_CHECK(per_batch || (positions_in.dim() == 1 && positions_in.size(0) == T), "rope: positions ",
           shape_str(positions_in.shape()), " must be [T] or [B, T] for x ", shape_str(x.shape()), " [B, T, H, D]");
  int64_t rotary_dim = options.rotary_dim == 0 ? D : options.rotary_dim;
  LD_CHECK(rotary_dim > 0 && rotary_dim <= D && rotary_dim % 2 == 0, "rope: rotary_dim ", rotary_dim,
           " must be even and in (0, ", D, "] for x ", shape_str(x.shape()));
  LD_CHECK(options.theta > 0, "rope: theta must be positive, got ", options.theta);
  Tensor positions = positions_in.detach().to(DType::i64).contiguous();
  Tensor y = rope_apply(x.detach(), positions, options, rotary_dim, false);
  if (auto node = make_node<RopeBackward>({x})) {
    node->positions = positions;
    node->options = options;
    node->rotary_dim = rotary_dim;
    set_history(y, node);
  }
  return y;
}

}  // namespace ld::ops
