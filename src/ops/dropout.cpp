// Inverted dropout with a counter-based (Philox) mask. The mask is a pure function of (seed,
// offset, element index), so the backward regenerates it by running the same kernel on the
// gradient instead of keeping a mask tensor alive between forward and backward.
#include "core/rng.hpp"
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

struct DropoutBackward : Node {
  uint64_t seed, offset;
  float p;
  DropoutBackward(uint64_t s, uint64_t o, float prob) : seed(s), offset(o), p(prob) {}
  const char* name() const override { return "DropoutBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor dy = grads[0].contiguous();
    Tensor dx = empty(dy.shape(), DType::f32, dy.device());
    dy.backend().dropout(dy.numel(), dy.data<float>(), p, seed, offset, dx.data<float>());
    return {dx};
  }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  detail::check_f32(x, "dropout", "x");
  // Checked even when not training, so a bad config fails on the first eval step too. p == 1 would
  // zero everything (and 1/(1-p) is infinite); float(p) == 1 catches p just below 1.
  LD_CHECK(p >= 0.0 && p < 1.0 && float(p) < 1.0f, "dropout: p must be in [0, 1), got ", p, " (x ",
           shape_str(x.shape()), ")");
  if (!training || p == 0.0) return x;

  Generator& g = gen ? *gen : default_generator();
  uint64_t seed = g.seed();
  uint64_t offset = g.advance(uint64_t(x.numel()));
  Tensor input = x.detach().contiguous();
  Tensor y = empty(input.shape(), DType::f32, input.device());
  input.backend().dropout(input.numel(), input.data<float>(), float(p), seed, offset, y.data<float>());
  set_history(y, make_node<DropoutBackward>({x}, seed, offset, float(p)));
  return y;
}

}  // namespace ld::ops
