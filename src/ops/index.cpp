// index_add: scatter-add rows of src into a fresh [rows, C] tensor by index, the adjoint of embedding's
// row gather. Its forward is the same computation as embedding's backward, so it runs on that kernel
// (no new backend method); its backward is a gather, i.e. embedding itself.
#include "ops/op_utils.hpp"
#include "ops/ops.hpp"

namespace ld::ops {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

template <typename Id>
void check_in_range(const Id* index, int64_t n, int64_t rows) {
  for (int64_t i = 0; i < n; ++i) {
    int64_t id = int64_t(index[i]);
    LD_CHECK(id >= 0 && id < rows, "index_add: index ", id, " at flat position ", i, " is out of range [0, rows) with rows=",
             rows);
  }
}

// A host-side scan: a bad index must be a clear exception, not a wild write.
void check_index(const Tensor& index, int64_t rows) {
  Tensor host = index.to(kCPU);
  if (host.dtype() == DType::i64)
    check_in_range(host.data<int64_t>(), host.numel(), rows);
  else
    check_in_range(host.data<int32_t>(), host.numel(), rows);
}

struct IndexAddBackward : Node {
  Tensor index;  // contiguous, detached
  Shape src_shape;
  explicit IndexAddBackward(Tensor i, Shape s) : index(std::move(i)), src_shape(std::move(s)) {}
  const char* name() const override { return "IndexAddBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& grads) override {
    return {embedding(index, grads[0].contiguous()).reshape(src_shape)};
  }
  void release() override { index = Tensor(); }
};

}  // namespace

Tensor index_add(const Tensor& index_in, const Tensor& src_in, int64_t rows) {
  LD_CHECK(index_in.defined(), "index_add: index is undefined");
  detail::check_index_dtype(index_in, "index_add", "index");
  detail::check_f32(src_in, "index_add", "src");
  check_same_device(index_in, src_in, "index_add");
  LD_CHECK(rows >= 0, "index_add: rows must be >= 0, got ", rows);
  Shape expected = index_in.shape();
  LD_CHECK(src_in.dim() == index_in.dim() + 1 &&
               Shape(src_in.shape().begin(), src_in.shape().end() - 1) == expected,
           "index_add: src must be index's shape plus a row dim, got index ", shape_str(index_in.shape()),
           " and src ", shape_str(src_in.shape()));
  Tensor index = index_in.detach().contiguous();
  check_index(index, rows);

  int64_t dim = src_in.shape().back();
  Tensor src = src_in.detach().contiguous();
  Tensor out = zeros({rows, dim}, DType::f32, src.device());
  src.backend().embedding_backward(index.numel(), index.raw(), index.dtype(), rows, dim, src.data<float>(),
                                   out.data<float>());
  set_history(out, make_node<IndexAddBackward>({src_in}, index, src_in.shape()));
  return out;
}

}  // namespace ld::ops
