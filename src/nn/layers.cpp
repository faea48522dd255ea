#include "nn/layers.hpp"

#include "ops/ops.hpp"

namespace ld::nn {

namespace {
constexpr float kInitStd = 0.02f;

void check_positive(int64_t n, const char* layer, const char* what) {
  LD_CHECK(n > 0, layer, ": ", what, " must be positive, got ", n);
}
}  // namespace

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator& gen) {
  check_positive(in_features, "Linear", "in_features");
  check_positive(out_features, "Linear", "out_features");
  weight = register_parameter("weight", normal({out_features, in_features}, 0.0f, kInitStd, &gen));
  if (with_bias) bias = register_parameter("bias", zeros({out_features}));
}

Tensor Linear::forward(const Tensor& x) const {
  Tensor y = ops::linear(x, weight, bias);
  return adapters_.empty() ? y : apply_adapters(adapters_, x, std::move(y));
}

void Linear::attach_adapter(std::shared_ptr<ProjectionAdapter> adapter) {
  LD_CHECK(adapter != nullptr, "Linear: attach_adapter got no adapter");
  adapter->train(is_training());
  const std::string kind = adapter->kind();  // read before the handle moves
  adapters_.push_back(register_module(kind, std::move(adapter)));
}

Embedding::Embedding(int64_t num_embeddings, int64_t dim, Generator& gen) {
  check_positive(num_embeddings, "Embedding", "num_embeddings");
  check_positive(dim, "Embedding", "dim");
  weight = register_parameter("weight", normal({num_embeddings, dim}, 0.0f, kInitStd, &gen));
}

Tensor Embedding::forward(const Tensor& ids) const { return ops::embedding(ids, weight); }

LayerNorm::LayerNorm(int64_t dim, double eps_, bool with_bias) : eps(eps_) {
  check_positive(dim, "LayerNorm", "dim");
  weight = register_parameter("weight", ones({dim}));
  if (with_bias) bias = register_parameter("bias", zeros({dim}));
}

Tensor LayerNorm::forward(const Tensor& x) const { return ops::layernorm(x, weight, bias, eps); }

RMSNorm::RMSNorm(int64_t dim, double eps_) : eps(eps_) {
  check_positive(dim, "RMSNorm", "dim");
  weight = register_parameter("weight", ones({dim}));
}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rmsnorm(x, weight, eps); }

}  // namespace ld::nn
