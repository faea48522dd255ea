#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

namespace {
struct CastBackward : autograd::Node {
  DType input_dtype;
  explicit CastBackward(DType d) : input_dtype(d) {}
  const char* name() const override { return "CastBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override { return {cast(grads[0], input_dtype)}; }
};
}  // namespace

Tensor cast(const Tensor& x, DType dtype) {
  Tensor out = empty(x.shape(), dtype, x.device());
  out.copy_(x.detach());
  if (is_floating(dtype)) autograd::set_history(out, autograd::make_node<CastBackward>({x}, x.dtype()));
  return out;
}

}  // namespace ld::ops
