#include "dist/tensor_parallel_ops.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/node.hpp"
#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::dist {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

void check_f32_input(const Tensor& t, const char* op, const char* arg) {
  LD_CHECK(t.defined(), op, ": ", arg, " is undefined");
  LD_CHECK(t.dtype() == DType::f32, op, ": ", arg, " must be f32, got ", dtype_name(t.dtype()));
}

// A contiguous copy of t summed over the ranks.
Tensor all_reduced(const Tensor& t, Communicator& comm) {
  Tensor out = t.detach().contiguous().clone();
  comm.all_reduce(out.raw(), out.numel(), ElemType::f32, ReduceOp::sum);
  return out;
}

// The gradient that flowed into output 0, or zeros of the input's shape when none did: the
// collectives must still run on every rank.
Tensor grad_or_zeros(const Node& node, const std::vector<Tensor>& grads) {
  if (grads[0].defined()) return grads[0];
  return zeros(node.next_edges[0].shape);
}

std::vector<int64_t> host_ids(const Tensor& ids, const char* op, const char* arg) {
  LD_CHECK(ids.defined(), op, ": ", arg, " is undefined");
  LD_CHECK(ids.dtype() == DType::i64 || ids.dtype() == DType::i32, op, ": ", arg, " must be i32 or i64, got ",
           dtype_name(ids.dtype()));
  return ids.detach().to(kCPU).to(DType::i64).contiguous().to_vector<int64_t>();
}

struct CopyToTpBackward : Node {
  Communicator* comm;
  explicit CopyToTpBackward(Communicator* c) : comm(c) {}
  const char* name() const override { return "CopyToTpBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    return {all_reduced(grad_or_zeros(*this, grads), *comm)};
  }
};

struct ReduceFromTpBackward : Node {
  const char* name() const override { return "ReduceFromTpBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override { return {grad_or_zeros(*this, grads)}; }
};

// --- vocabulary-parallel cross-entropy

struct VocabSlice {
  int64_t start = 0, size = 0, vocab = 0;
  bool owns(int64_t id) const { return id >= start && id < start + size; }
};

VocabSlice vocab_slice(int64_t local_size, const Communicator& comm) {
  return {comm.rank() * local_size, local_size, local_size * comm.size()};
}

struct CrossEntropyState {
  std::vector<int64_t> targets;
  std::vector<double> lse;  // per row, over the whole vocabulary
  int64_t counted = 0;      // non-ignored targets
  int64_t ignore_index = -100;
  VocabSlice slice;
};

struct VocabParallelCrossEntropyBackward : Node {
  Tensor logits;  // contiguous host [rows, V/tp]
  CrossEntropyState state;
  Device device = kCPU;  // of the logits the gradient goes back to
  const char* name() const override { return "VocabParallelCrossEntropyBackward"; }

  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    LD_CHECK(logits.defined(), name(), ": saved tensors were freed by an earlier backward; pass retain_graph=true");
    const double g = grads[0].defined() ? grads[0].item() : 0.0;
    const double per_row = state.counted > 0 ? g / double(state.counted) : 0.0;
    const int64_t rows = int64_t(state.targets.size()), cols = state.slice.size;
    Tensor dlogits = zeros({rows, cols});
    const float* l = logits.data<float>();
    float* d = dlogits.data<float>();
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t t = state.targets[size_t(i)];
      if (t == state.ignore_index) continue;
      for (int64_t j = 0; j < cols; ++j)
        d[i * cols + j] = float(per_row * std::exp(double(l[i * cols + j]) - state.lse[size_t(i)]));
      if (state.slice.owns(t)) d[i * cols + t - state.slice.start] -= float(per_row);
    }
    return {dlogits.view(next_edges[0].shape).to(device)};
  }
  void release() override { logits = Tensor(); }
};

void check_targets(const std::vector<int64_t>& targets, const CrossEntropyState& s) {
  for (size_t i = 0; i < targets.size(); ++i) {
    const int64_t t = targets[i];
    LD_CHECK(t == s.ignore_index || (t >= 0 && t < s.slice.vocab), "vocab_parallel_cross_entropy: target ", t,
             " at flat position ", i, " is out of range [0, ", s.slice.vocab, ") (ignore_index=", s.ignore_index, ")");
  }
}

// Per row: the maximum logit over the whole vocabulary (one all-reduce).
std::vector<float> global_row_max(const float* l, int64_t rows, int64_t cols, Communicator& comm) {
  std::vector<float> row_max(size_t(rows), -std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) row_max[size_t(i)] = std::max(row_max[size_t(i)], l[i * cols + j]);
  comm.all_reduce(row_max.data(), rows, ElemType::f32, ReduceOp::max);
  return row_max;
}

// Fills s.lse and returns the summed loss of the non-ignored rows: the sums of exp(l - max) and the
// target logits (each held by one rank) travel in one all-reduce.
double row_losses(const float* l, int64_t rows, const std::vector<float>& row_max, CrossEntropyState& s,
                  Communicator& comm) {
  const int64_t cols = s.slice.size;
  std::vector<double> sums(size_t(2 * rows), 0.0);  // [sum exp | target logit]
  for (int64_t i = 0; i < rows; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += std::exp(double(l[i * cols + j]) - double(row_max[size_t(i)]));
    sums[size_t(i)] = sum;
    const int64_t t = s.targets[size_t(i)];
    if (t != s.ignore_index && s.slice.owns(t)) sums[size_t(rows + i)] = l[i * cols + t - s.slice.start];
  }
  comm.all_reduce(sums.data(), 2 * rows, ElemType::f64, ReduceOp::sum);
  double total = 0;
  s.lse.resize(size_t(rows));
  for (int64_t i = 0; i < rows; ++i) {
    s.lse[size_t(i)] = double(row_max[size_t(i)]) + std::log(sums[size_t(i)]);
    if (s.targets[size_t(i)] != s.ignore_index) total += s.lse[size_t(i)] - sums[size_t(rows + i)];
  }
  return total;
}

}  // namespace

Tensor copy_to_tp(const Tensor& x, Communicator& comm) {
  check_f32_input(x, "copy_to_tp", "x");
  Tensor out = x.detach();  // the same values: only the backward differs from identity
  set_history(out, make_node<CopyToTpBackward>({x}, &comm));
  return out;
}

Tensor reduce_from_tp(const Tensor& x, Communicator& comm) {
  check_f32_input(x, "reduce_from_tp", "x");
  Tensor out = all_reduced(x, comm);
  set_history(out, make_node<ReduceFromTpBackward>({x}));
  return out;
}

Tensor vocab_parallel_embedding(const Tensor& ids, const Tensor& table_part, Communicator& comm) {
  const char* op = "vocab_parallel_embedding";
  check_f32_input(table_part, op, "table_part");
  LD_CHECK(table_part.dim() == 2, op, ": table_part must be [V/tp, C], got ", shape_str(table_part.shape()));
  const VocabSlice slice = vocab_slice(table_part.size(0), comm);
  std::vector<int64_t> local = host_ids(ids, op, "ids");
  std::vector<float> owned(local.size(), 0.0f);
  for (size_t i = 0; i < local.size(); ++i) {
    LD_CHECK(local[i] >= 0 && local[i] < slice.vocab, op, ": id ", local[i], " at flat position ", i,
             " is out of range [0, ", slice.vocab, ") (", comm.size(), " ranks x ", slice.size, " rows)");
    // Ids another rank owns look up row 0 and are zeroed by the mask.
    owned[i] = slice.owns(local[i]) ? 1.0f : 0.0f;
    local[i] = slice.owns(local[i]) ? local[i] - slice.start : 0;
  }
  Shape mask_shape = ids.shape();
  mask_shape.push_back(1);
  const Device dev = table_part.device();
  const Tensor rows = ops::embedding(from_vector(local, ids.shape(), dev), table_part);
  return reduce_from_tp(ops::mul(rows, from_vector(owned, mask_shape, dev)), comm);
}

Tensor vocab_parallel_cross_entropy(const Tensor& logits_part, const Tensor& targets, Communicator& comm,
                                    int64_t ignore_index) {
  const char* op = "vocab_parallel_cross_entropy";
  check_f32_input(logits_part, op, "logits_part");
  LD_CHECK(logits_part.dim() >= 1, op, ": logits_part must have a vocabulary dim, got a scalar");
  const Shape& lshape = logits_part.shape();
  const Shape row_shape(lshape.begin(), lshape.end() - 1);
  LD_CHECK(targets.defined() && targets.shape() == row_shape, op, ": targets ",
           targets.defined() ? shape_str(targets.shape()) : "undefined", " do not match logits_part ",
           shape_str(lshape), " (expected ", shape_str(row_shape), ")");
  CrossEntropyState s;
  s.ignore_index = ignore_index;
  s.slice = vocab_slice(lshape.back(), comm);
  s.targets = host_ids(targets, op, "targets");
  check_targets(s.targets, s);  // before any collective: every rank sees the same targets and fails alike
  s.counted = int64_t(std::count_if(s.targets.begin(), s.targets.end(),
                                    [ignore_index](int64_t t) { return t != ignore_index; }));

  const Tensor logits = logits_part.detach().to(kCPU).contiguous();
  const int64_t rows = int64_t(s.targets.size());
  const std::vector<float> row_max = global_row_max(logits.data<float>(), rows, s.slice.size, comm);
  const double total = row_losses(logits.data<float>(), rows, row_max, s, comm);
  Tensor loss = scalar_tensor(s.counted > 0 ? total / double(s.counted) : 0.0, DType::f32, logits_part.device());
  if (auto node = make_node<VocabParallelCrossEntropyBackward>({logits_part})) {
    node->logits = logits;
    node->state = std::move(s);
    node->device = logits_part.device();
    set_history(loss, node);
  }
  return loss;
}

}  // namespace ld::dist
