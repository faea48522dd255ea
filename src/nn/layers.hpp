#pragma once
// The basic layers, each a Module over one op, with PyTorch / Hugging Face parameter names and
// layouts (Linear weight [out, in]). Weights are f32; Linear and Embedding draw N(0, 0.02) from the
// generator passed in (GPT-2's init), biases start at 0, norm weights at 1.
#include <cstdint>

#include "core/rng.hpp"
#include "nn/module.hpp"
#include "nn/projection_adapter.hpp"

namespace ld::nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) const;  // x [..., in] -> [..., out], through any attached adapters
  // Share `w` (same shape, e.g. the token embedding for lm_head) as this layer's weight.
  void tie_weight(const Tensor& w) { weight = replace_parameter("weight", w); }
  // Registers `adapter` as the child adapter->kind() (so its parameters are named
  // "<layer>.<kind>...."); forward then passes (x, base output) through it. Its train mode follows
  // this layer's. Two adapters of one kind on one layer are an error.
  void attach_adapter(std::shared_ptr<ProjectionAdapter> adapter);
  const ProjectionAdapters& adapters() const { return adapters_; }

  Tensor weight;  // [out, in]
  Tensor bias;    // [out], undefined without bias

 private:
  ProjectionAdapters adapters_;
};

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen);
  Tensor forward(const Tensor& ids) const;  // ids i32/i64 [...] -> [..., dim]

  Tensor weight;  // [num_embeddings, dim]
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool bias = true);
  Tensor forward(const Tensor& x) const;

  Tensor weight;  // [dim]
  Tensor bias;    // [dim], undefined without bias
  double eps;
};

class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, double eps = 1e-6);
  Tensor forward(const Tensor& x) const;

  Tensor weight;  // [dim]
  double eps;
};

}  // namespace ld::nn
