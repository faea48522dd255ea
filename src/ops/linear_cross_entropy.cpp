// ops::linear_cross_entropy: the LM head's projection and its cross-entropy, a chunk of rows at a
// time, so the [rows, V] logits never exist whole. With a gradient wanted, each chunk's dlogits
// (written over its logits) are turned into that chunk's dx rows and its share of dW and db at once.
// They are made for a loss summed over the rows, dlogits = softmax - target in [-1, 1], whatever the
// reduction: the backward scales them by the upstream gradient over the mean's divisor, one scalar
// for the whole gradient, so a data-parallel rank whose loss is weighted by its share of the tokens
// gets the very gradient one process would, up to summation order.
#include <algorithm>

#include "ops/autocast.hpp"
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"
#include "ops/projection_gemm.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;
using Reduction = CrossEntropyOptions::Reduction;

namespace {

// A chunk's logits stay near this many elements (512 MiB in f32, 256 in bf16): small next to GPT-2's [B*T, 50257]
// at any batch worth chunking, and rows enough (2670 at V = 50257) that dW's read-modify-write per
// chunk stays a few percent of the chunk's own traffic.
constexpr int64_t kChunkElements = int64_t(1) << 27;

struct LinearCrossEntropyBackward : Node {
  Tensor dx, dw, db;         // of the loss summed over the rows; each undefined unless wanted
  double per_unit_loss = 1;  // what the loss is per unit of that sum: 1 (sum) or 1 / counted (mean)
  const char* name() const override { return "LinearCrossEntropyBackward"; }
  // inputs: x, weight, bias
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    LD_CHECK(dx.defined() || dw.defined() || db.defined(), name(), ": saved gradients were freed by an earlier "
             "backward; pass retain_graph=true to backward through the graph twice");
    const Tensor s = scale(grads[0], per_unit_loss);
    auto scaled = [&](const Tensor& t) { return t.defined() ? mul(t, s) : Tensor(); };
    return {scaled(dx), scaled(dw), scaled(db)};
  }
  void release() override { dx = dw = db = Tensor(); }
};

void check_linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& targets,
                                const CrossEntropyOptions& options, int64_t chunk_rows) {
  const char* op = "linear_cross_entropy";
  detail::check_f32(x, op, "x");
  detail::check_f32(weight, op, "weight");
  LD_CHECK(targets.defined(), op, ": targets is undefined");
  detail::check_index_dtype(targets, op, "targets");
  check_same_device(x, weight, op);
  check_same_device(x, targets, op);
  LD_CHECK(weight.dim() == 2, op, ": weight must be [V, C], got ", shape_str(weight.shape()));
  LD_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), op, ": input ", shape_str(x.shape()),
           " does not match weight ", shape_str(weight.shape()));
  if (bias.defined()) {
    detail::check_f32(bias, op, "bias");
    check_same_device(x, bias, op);
    LD_CHECK(bias.shape() == Shape{weight.size(0)}, op, ": bias ", shape_str(bias.shape()), " is not [",
             weight.size(0), "]");
  }
  const Shape rows(x.shape().begin(), x.shape().end() - 1);
  LD_CHECK(targets.shape() == rows, op, ": targets ", shape_str(targets.shape()), " do not match input ",
           shape_str(x.shape()), " (expected targets ", shape_str(rows), ")");
  LD_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0, op, ": label_smoothing ",
           options.label_smoothing, " is not in [0, 1]");
  LD_CHECK(chunk_rows >= 0, op, ": chunk_rows must be >= 0 (0 picks it), got ", chunk_rows);
}

// What one chunk of rows [first, first + rows) computes, its buffers sized for the largest chunk.
// f32: the chunk's logits and dlogits are f32 [chunk, V]. bf16 autocast: the logits are written in
// bf16 only, as PyTorch's autocast linear writes them (the loss is then computed in f32 from them),
// and so are their dlogits, in place, which the dx, dW and db products read as they are. Those rows
// are ld = V rounded up to 8 apart (16-byte aligned rows, as a GPU's tensor cores want): W's rounded
// copy has zero rows and the bias zeros there, and the padding columns are never read as logits.
struct ChunkRunner {
  detail::ProjectionGemms gemms;  // rows set per chunk; out = ld
  int64_t vocab = 0, ld = 0;
  Tensor x2, x16, weight, w16, bias, targets;
  CrossEntropyOptions options;
  Tensor logits, lse, ones_rows, ones16;  // chunk scratch: logits f32 [chunk, V] or 16-bit [chunk, ld]
  Tensor loss_rows;                       // [rows of x], every chunk's losses
  Tensor dx, dw, db;                      // what the node keeps

  bool half_logits() const { return logits.dtype() != DType::f32; }
  Backend& backend() const { return weight.backend(); }

  CrossEntropyArgs ce_args(int64_t first, int64_t rows) const {
    CrossEntropyArgs a;
    a.rows = rows, a.vocab = vocab, a.ld = ld;
    a.logits = logits.raw(), a.logits_dtype = logits.dtype();
    a.targets = static_cast<const char*>(targets.raw()) + first * int64_t(dtype_size(targets.dtype()));
    a.target_dtype = targets.dtype();
    a.ignore_index = options.ignore_index;
    a.label_smoothing = float(options.label_smoothing);
    return a;
  }

  detail::Rows rows_of(const Tensor& full, const Tensor& rounded, int64_t first, int64_t rows) const {
    return detail::Rows(full.defined() ? full.narrow(0, first, rows) : Tensor(),
                        rounded.defined() ? rounded.narrow(0, first, rows) : Tensor());
  }

  GemmArgs with_weight(GemmArgs g) const {
    if (w16.defined()) g.b = nullptr, g.b_half = static_cast<const uint16_t*>(w16.raw());
    return g;
  }

  void forward(const detail::ProjectionGemms& s, int64_t first, int64_t rows) {
    GemmArgs g = with_weight(s.forward(rows_of(x2, x16, first, rows), weight, nullptr));
    if (half_logits())
      g.c_half = static_cast<uint16_t*>(logits.raw());
    else
      g.c = logits.data<float>();
    if (bias.defined()) g.bias = bias.data<float>();
    backend().gemm(g);
  }

  // the chunk's dlogits [rows, V], ld apart, as the products read them
  detail::Rows dlogits(int64_t rows) const {
    const Tensor g = logits.narrow(0, 0, rows);
    return half_logits() ? detail::Rows(Tensor(), g) : detail::Rows(g, Tensor());
  }

  void backward(detail::ProjectionGemms s, int64_t first, int64_t rows, bool first_chunk) {
    Backend& be = backend();
    s.out = vocab;
    const detail::Rows grad = dlogits(rows);
    if (dx.defined()) {
      GemmArgs g = with_weight(s.input_grad(grad, weight, dx.data<float>() + first * s.in));
      g.lda = ld;
      be.gemm(g);
    }
    if (dw.defined()) {
      GemmArgs g = s.weight_grad(grad, rows_of(x2, x16, first, rows), dw.data<float>());
      g.lda = ld, g.beta = first_chunk ? 0.0f : 1.0f;
      be.gemm(g);
    }
    if (db.defined()) add_bias_grad(grad, rows, first_chunk);
  }

  // db += the column sums of dlogits: 16-bit ones, by a product with a row of ones (f32 accumulation)
  void add_bias_grad(const detail::Rows& grad, int64_t rows, bool first_chunk) {
    Backend& be = backend();
    if (!half_logits()) {
      Tensor part = empty({vocab}, DType::f32, db.device());
      be.reduce_sum(1, rows, vocab, grad.f32, part.data<float>());
      db = first_chunk ? part : add(db, part);
      return;
    }
    GemmArgs g;  // db [1, V] = ones [1, rows] G [rows, V]
    g.m = 1, g.n = vocab, g.k = rows;
    g.a_half = static_cast<const uint16_t*>(ones16.raw()), g.lda = std::max<int64_t>(rows, 1);
    g.b_half = grad.half, g.ldb = ld;
    g.c = db.data<float>(), g.ldc = vocab;
    g.beta = first_chunk ? 0.0f : 1.0f;
    g.precision = gemms.precision;
    be.gemm(g);
  }

  void run(int64_t first, int64_t rows, bool first_chunk) {
    detail::ProjectionGemms s = gemms;
    s.rows = rows;
    forward(s, first, rows);
    const CrossEntropyArgs a = ce_args(first, rows);
    backend().cross_entropy_forward(a, loss_rows.data<float>() + first, lse.data<float>());
    if (!dx.defined() && !dw.defined() && !db.defined()) return;
    backend().cross_entropy_backward(a, lse.data<float>(), ones_rows.data<float>(), logits.raw());  // in place
    backward(s, first, rows, first_chunk);
  }
};

// w rounded to `precision`'s 16 bits, with zero rows after its own up to ld
Tensor padded_rounded_weight(const Tensor& w, int64_t ld, ComputePrecision precision) {
  Tensor padded = zeros({ld, w.size(1)}, half_dtype(precision), w.device());
  padded.narrow(0, 0, w.size(0)).copy_(w);
  return padded;
}

Tensor padded_bias(const Tensor& bias, int64_t ld) {
  Tensor padded = zeros({ld}, DType::f32, bias.device());
  padded.narrow(0, 0, bias.size(0)).copy_(bias);
  return padded;
}

}  // namespace

int64_t linear_cross_entropy_chunk_rows(int64_t rows, int64_t vocab) {
  return std::clamp<int64_t>(kChunkElements / std::max<int64_t>(vocab, 1), 1, std::max<int64_t>(rows, 1));
}

Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight_in, const Tensor& bias_in, const Tensor& targets_in,
                            const CrossEntropyOptions& options, int64_t chunk_rows) {
  check_linear_cross_entropy(x, weight_in, bias_in, targets_in, options, chunk_rows);
  // reduction none: a per-row upstream gradient, so dlogits cannot be made ahead. fp16: the two ops
  // round dlogits after the loss scale multiplies them, which keeps dynamic loss scaling's overflow
  // checks where PyTorch has them.
  if (options.reduction == Reduction::none || autocast_precision() == ComputePrecision::fp16)
    return cross_entropy(linear(x, weight_in, bias_in), targets_in, options);
  const int64_t in = weight_in.size(1), vocab = weight_in.size(0);
  Shape logits_shape = x.shape();
  logits_shape.back() = vocab;
  ChunkRunner c;
  c.x2 = x.detach().reshape({-1, in}).contiguous();
  const int64_t rows = c.x2.size(0);
  c.targets = targets_in.contiguous();
  const int64_t counted =
      detail::validate_targets(c.targets, vocab, options.ignore_index, logits_shape, "linear_cross_entropy");
  c.weight = weight_in.detach().contiguous();
  if (bias_in.defined()) c.bias = bias_in.detach().contiguous();
  c.options = options;
  const ComputePrecision precision = autocast_precision();
  const bool half = precision != ComputePrecision::f32;  // bf16 (fp16 took the two ops)
  c.vocab = vocab, c.ld = half ? (vocab + 7) / 8 * 8 : vocab;
  c.gemms = {rows, in, c.ld, WeightLayout::out_in, precision, /*working_weights=*/false};  // its own padded copy
  auto node = make_node<LinearCrossEntropyBackward>({x, weight_in, bias_in});

  const Device dev = x.device();
  const int64_t chunk =
      chunk_rows > 0 ? std::min(chunk_rows, std::max<int64_t>(rows, 1)) : linear_cross_entropy_chunk_rows(rows, vocab);
  if (half) {  // read by every chunk's products: rounded once
    c.x16 = detail::rounded_operand(c.x2, precision);
    c.w16 = padded_rounded_weight(c.weight, c.ld, precision);
    if (c.bias.defined()) c.bias = padded_bias(c.bias, c.ld);
  }
  c.logits = empty({chunk, c.ld}, half ? half_dtype(precision) : DType::f32, dev);
  c.lse = empty({chunk}, DType::f32, dev);
  c.loss_rows = empty({rows}, DType::f32, dev);
  if (node) {
    c.ones_rows = ones({chunk}, DType::f32, dev);
    if (node->needs_input_grad(0)) c.dx = empty({rows, in}, DType::f32, dev);
    // without rows no chunk runs: the gradients are zeros
    if (node->needs_input_grad(1))
      c.dw = rows == 0 ? zeros({vocab, in}, DType::f32, dev) : empty({vocab, in}, DType::f32, dev);
    if (node->needs_input_grad(2)) {
      c.db = zeros({vocab}, DType::f32, dev);
      if (half) c.ones16 = ones({chunk}, half_dtype(precision), dev);
    }
  }
  for (int64_t first = 0; first < rows; first += chunk) c.run(first, std::min(chunk, rows - first), first == 0);

  Tensor out = detail::reduce_losses(c.loss_rows, counted, options.reduction);
  if (node) {
    node->dx = c.dx.defined() ? c.dx.view(x.shape()) : Tensor();
    node->dw = c.dw;
    node->db = c.db;
    node->per_unit_loss =
        options.reduction == Reduction::sum ? 1.0 : counted > 0 ? 1.0 / double(counted) : 0.0;
    set_history(out, node);
  }
  return out;
}

}  // namespace ld::ops
