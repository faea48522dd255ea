// Embedding lookup: out[..., :] = table[ids[...], :]. The gradient goes to the table only.
#include "autograd/grad_mode.hpp"
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

// Row-major multi-index of a flat position, for error messages.
Shape unravel(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

template <typename Id>
void check_ids_in_range(const Id* ids, const Tensor& id_tensor, const Tensor& table) {
  int64_t n = id_tensor.numel(), vocab = table.size(0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t id = int64_t(ids[i]);
    if (id >= 0 && id < vocab) continue;
    LD_FAIL("embedding: id ", id, " at position ", shape_str(unravel(i, id_tensor.shape())), " of ids ",
            shape_str(id_tensor.shape()), " is out of range [0, V) for a table ", shape_str(table.shape()),
            " with V=", vocab);
  }
}

// ids: contiguous. A host-side scan: a user error here must be a clear exception, not a wild read.
void check_ids(const Tensor& ids, const Tensor& table) {
  Tensor host = ids.to(kCPU);
  if (host.dtype() == DType::i64)
    check_ids_in_range(host.data<int64_t>(), host, table);
  else
    check_ids_in_range(host.data<int32_t>(), host, table);
}

struct EmbeddingBackward : Node {
  Tensor ids;  // contiguous, detached
  int64_t vocab, dim;
  EmbeddingBackward(Tensor i, int64_t v, int64_t d) : ids(std::move(i)), vocab(v), dim(d) {}
  const char* name() const override { return "EmbeddingBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    Tensor dy = grads[0].contiguous();
    Tensor dtable = zeros({vocab, dim}, DType::f32, dy.device());
    dy.backend().embedding_backward(ids.numel(), ids.raw(), ids.dtype(), vocab, dim, dy.data<float>(),
                                    dtable.data<float>());
    return {dtable};
  }
  void release() override { ids = Tensor(); }
};

// A bf16 table (infer::to_bf16_weights, inference only): each row widened to f32 on the way out.
// Decoding looks up one row per sequence, so a copy per row is cheap enough.
Tensor embedding_bf16_table(const Tensor& ids, const Tensor& table) {
  LD_CHECK(!autograd::grad_enabled() || !table.requires_grad(),
           "embedding: a bf16 table is for inference only (no backward through it); run under NoGradGuard");
  const int64_t dim = table.size(1), one = 1;
  Shape out_shape = ids.shape();
  out_shape.push_back(dim);
  Tensor weights = table.detach().contiguous();
  Tensor out = empty(out_shape, DType::f32, table.device());
  Tensor host = ids.to(kCPU).to(DType::i64);
  const int64_t* id = host.data<int64_t>();
  const auto* rows = static_cast<const uint16_t*>(weights.raw());
  float* dst = out.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i)
    table.backend().copy_strided(1, &dim, DType::bf16, rows + id[i] * dim, &one, DType::f32, dst + i * dim, &one);
  return out;
}

}  // namespace

Tensor embedding(const Tensor& ids_in, const Tensor& table) {
  LD_CHECK(ids_in.defined(), "embedding: ids is undefined");
  detail::check_index_dtype(ids_in, "embedding", "ids");
  if (table.dtype() != DType::bf16) detail::check_f32(table, "embedding", "table");
  check_same_device(ids_in, table, "embedding");
  LD_CHECK(table.dim() == 2, "embedding: table must be [V, C], got ", shape_str(table.shape()));
  Tensor ids = ids_in.detach().contiguous();
  check_ids(ids, table);
  if (table.dtype() == DType::bf16) return embedding_bf16_table(ids, table);

  int64_t dim = table.size(1);
  Shape out_shape = ids.shape();
  out_shape.push_back(dim);
  Tensor weights = table.detach().contiguous();
  Tensor out = empty(out_shape, DType::f32, table.device());
  table.backend().embedding_forward(ids.numel(), ids.raw(), ids.dtype(), dim, weights.data<float>(),
                                    out.data<float>());
  set_history(out, make_node<EmbeddingBackward>({table}, ids, table.size(0), dim));
  return out;
}

}  // namespace ld::ops
