#pragma once
// AdamW (Loshchilov & Hutter): Adam moments with weight decay applied to the weights directly,
// not through the gradient. One backend kernel call per parameter updates param, m and v in a
// single pass over memory.
#include <vector>

#include "core/tensor.hpp"

namespace ld::train {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.01f;
};

// Parameters sharing a weight decay (norms, biases and embeddings usually get none).
struct ParamGroup {
  std::vector<Tensor> params;
  float weight_decay = 0.0f;
};

class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options);
  // One update from the parameters' current .grad (parameters without a grad are skipped).
  // grad_scale multiplies every gradient first (gradient clipping, loss-scale undo).
  void step(float grad_scale = 1.0f);
  void zero_grad();
  void set_lr(float lr) { options_.lr = lr; }
  int64_t steps() const { return step_; }

 private:
  struct Slot {
    Tensor param, m, v;
    float weight_decay;
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

// Global L2 norm of the gradients of `params` (for clipping), in double.
double grad_norm(const std::vector<Tensor>& params);

}  // namespace ld::train
