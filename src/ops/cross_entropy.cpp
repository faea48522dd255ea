// Cross-entropy over the last dim of logits with integer targets: fused log-softmax + NLL with
// ignore_index and label smoothing (PyTorch's definitions). The forward keeps one log-sum-exp per
// row; the backward recomputes softmax from it and writes dlogits in one pass.
#include <string>

#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;
using Reduction = CrossEntropyOptions::Reduction;

namespace {

std::string index_str(int64_t flat, const Shape& shape) {
  Shape idx(shape.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) idx[d] = flat % shape[d], flat /= shape[d];
  return shape_str(idx);
}

struct CrossEntropyBackward : Node {
  Tensor logits;   // contiguous
  Tensor targets;  // contiguous, i32 or i64
  Tensor lse;      // [rows]
  Shape logits_shape;
  int64_t counted = 0;
  CrossEntropyOptions options;
  const char* name() const override { return "CrossEntropyBackward"; }

  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    LD_CHECK(logits.defined(), name(), ": saved tensors were freed by an earlier backward; pass retain_graph=true to "
             "backward through the graph twice");
    const int64_t rows = lse.numel();
    Tensor dloss_rows;  // upstream gradient per row, already divided by the counted rows
    if (options.reduction == Reduction::none) {
      dloss_rows = grads[0].contiguous();
    } else {
      Tensor g = grads[0];
      if (options.reduction == Reduction::mean) g = scale(g, counted > 0 ? 1.0 / double(counted) : 0.0);
      dloss_rows = g.reshape({1}).expand({rows}).contiguous();
    }
    Tensor dlogits = empty(logits_shape, DType::f32, logits.device());
    CrossEntropyArgs a = args();
    logits.backend().cross_entropy_backward(a, lse.data<float>(), dloss_rows.data<float>(), dlogits.data<float>());
    return {dlogits};
  }

  CrossEntropyArgs args() const {
    CrossEntropyArgs a;
    a.vocab = logits_shape.back();
    a.rows = lse.numel();
    a.logits = logits.data<float>();
    a.targets = targets.raw();
    a.target_dtype = targets.dtype();
    a.ignore_index = options.ignore_index;
    a.label_smoothing = float(options.label_smoothing);
    return a;
  }

  void release() override { logits = targets = lse = Tensor(); }
};

}  // namespace

namespace {

// Checks every target is in [0, vocab) or ignore_index; returns how many are not ignored.
template <typename T>
int64_t count_targets(const T* ids, int64_t n, int64_t vocab, int64_t ignore_index, const Shape& shape,
                      const Shape& logits_shape, const char* op) {
  int64_t counted = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = int64_t(ids[i]);
    if (t == ignore_index) continue;
    LD_CHECK(t >= 0 && t < vocab, op, ": target ", t, " at ", index_str(i, shape), " is out of range [0, ", vocab,
             ") for logits ", shape_str(logits_shape), " (ignore_index=", ignore_index, ")");
    ++counted;
  }
  return counted;
}

}  // namespace

namespace detail {

int64_t validate_targets(const Tensor& targets, int64_t vocab, int64_t ignore_index, const Shape& logits_shape,
                         const char* op) {
  Tensor host = targets.to(kCPU);  // tiny next to the logits; the check needs the values
  if (host.dtype() == DType::i32)
    return count_targets(host.data<int32_t>(), host.numel(), vocab, ignore_index, host.shape(), logits_shape, op);
  return count_targets(host.data<int64_t>(), host.numel(), vocab, ignore_index, host.shape(), logits_shape, op);
}

Tensor reduce_losses(const Tensor& loss_rows, int64_t counted, Reduction reduction) {
  Backend& be = loss_rows.backend();
  Tensor out = empty({}, DType::f32, loss_rows.device());
  be.reduce_sum(1, loss_rows.numel(), 1, loss_rows.data<float>(), out.data<float>());  // accumulates in double
  // all ignored: every row's loss is 0, so the mean is 0 (not 0/0)
  if (reduction == Reduction::mean && counted > 0)
    be.affine(1, out.data<float>(), float(1.0 / double(counted)), 0.0f, out.data<float>());
  return out;
}

}  // namespace detail

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, const CrossEntropyOptions& options) {
  const char* op = "cross_entropy";
  detail::check_f32(logits_in, op, "logits");
  LD_CHECK(targets_in.defined(), op, ": targets is undefined");
  detail::check_index_dtype(targets_in, op, "targets");
  check_same_device(logits_in, targets_in, op);
  LD_CHECK(logits_in.dim() >= 1, op, ": logits must have at least 1 dim (the vocabulary), got a scalar");
  const Shape& lshape = logits_in.shape();
  Shape row_shape(lshape.begin(), lshape.end() - 1);
  LD_CHECK(targets_in.shape() == row_shape, op, ": targets ", shape_str(targets_in.shape()), " do not match logits ",
           shape_str(lshape), " (expected targets ", shape_str(row_shape), ")");
  LD_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0, op, ": label_smoothing ",
           options.label_smoothing, " is not in [0, 1]");
  const int64_t vocab = lshape.back(), rows = shape_numel(row_shape);
  Tensor targets = targets_in.contiguous();
  const int64_t counted = detail::validate_targets(targets, vocab, options.ignore_index, lshape, op);
  Tensor logits = logits_in.detach().contiguous();

  const Device dev = logits.device();
  Tensor loss_rows = empty({rows}, DType::f32, dev);
  Tensor lse = empty({rows}, DType::f32, dev);
  Backend& be = logits.backend();
  CrossEntropyArgs a;
  a.rows = rows, a.vocab = vocab;
  a.logits = logits.data<float>();
  a.targets = targets.raw();
  a.target_dtype = targets.dtype();
  a.ignore_index = options.ignore_index;
  a.label_smoothing = float(options.label_smoothing);
  be.cross_entropy_forward(a, loss_rows.data<float>(), lse.data<float>());

  Tensor out = options.reduction == Reduction::none ? loss_rows.view(row_shape)
                                                    : detail::reduce_losses(loss_rows, counted, options.reduction);

  if (auto node = make_node<CrossEntropyBackward>({logits_in})) {
    node->logits = logits;
    node->targets = targets;
    node->lse = lse;
    node->logits_shape = lshape;
    node->counted = counted;
    node->options = options;
    set_history(out, node);
  }
  return out;
}

}  // namespace ld::ops
