#include "nn/conv1d.hpp"

#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::nn {

Conv1D::Conv1D(int64_t in_features, int64_t out_features, Generator& gen, double init_std) {
  LD_CHECK(in_features > 0 && out_features > 0, "Conv1D: in_features=", in_features, " and out_features=",
           out_features, " must be positive");
  weight = register_parameter("weight", normal({in_features, out_features}, 0.0f, float(init_std), &gen));
  bias = register_parameter("bias", zeros({out_features}));
}

// One gemm over all rows that reads the [in, out] weight in place and adds the bias itself.
Tensor Conv1D::forward(const Tensor& x) const {
  const int64_t in = weight.size(0);
  LD_CHECK(x.dim() >= 1 && x.size(-1) == in, "Conv1D: input ", shape_str(x.shape()), " does not match weight ",
           shape_str(weight.shape()), " (last dim must be ", in, ")");
  Tensor y = ops::projection(x, weight, ops::WeightLayout::in_out, bias);
  return adapters_.empty() ? y : apply_adapters(adapters_, x, std::move(y));
}

void Conv1D::attach_adapter(std::shared_ptr<ProjectionAdapter> adapter) {
  LD_CHECK(adapter != nullptr, "Conv1D: attach_adapter got no adapter");
  adapter->train(is_training());
  const std::string kind = adapter->kind();  // read before the handle moves
  adapters_.push_back(register_module(kind, std::move(adapter)));
}

}  // namespace ld::nn
