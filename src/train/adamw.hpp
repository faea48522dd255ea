#pragma once
// AdamW (Loshchilov & Hutter): Adam moments with weight decay applied to the weights directly,
// not through the gradient. One backend kernel call per parameter updates param, m and v in a
// single pass over memory.
#include <vector>

#include "core/tensor.hpp"
#include "ops/working_weights.hpp"

namespace ld::train {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.01f;  // not read by AdamW: each ParamGroup carries its own weight_decay
};

// Parameters sharing a weight decay (norms, biases and embeddings usually get none; make_param_groups in
// train/param_groups.hpp builds the usual two groups from named parameters). Each parameter's slot
// keeps its group's decay, so step() is still one fused kernel pass per parameter whatever the mix.
struct ParamGroup {
  std::vector<Tensor> params;
  float weight_decay = 0.0f;
};

class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options);
  // One update from the parameters' current .grad (parameters without a grad are skipped).
  // grad_scale multiplies every gradient first (gradient clipping, loss-scale undo).
  // Gradient accumulation needs no helper: backward() adds into .grad, so for k micro-batches call
  // (loss / k).backward() on each, then step() once and zero_grad() (or pass grad_scale = 1/k instead
  // of dividing the loss, when no clipping sees the gradients first).
  void step(float grad_scale = 1.0f);
  void zero_grad();
  // The bf16 working copies step() keeps current (written in the same fused pass as the update;
  // rounded again for a parameter without a gradient this step), or null. Not owned.
  void set_working_weights(ops::WorkingWeights* working) { working_ = working; }
  void set_lr(float lr) { options_.lr = lr; }
  float lr() const { return options_.lr; }
  int64_t steps() const { return step_; }

  // The state, for checkpoints: each parameter with its first and second moments, in the order the
  // groups listed them. The tensors are the optimizer's own: copy_ into m and v (and set_steps) to
  // restore a saved state.
  struct ParamState {
    Tensor param, m, v;
  };
  std::vector<ParamState> state() const;
  void set_steps(int64_t steps);

 private:
  struct Slot {
    Tensor param, m, v;
    float weight_decay;
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
  ops::WorkingWeights* working_ = nullptr;
};

}  // namespace ld::train
