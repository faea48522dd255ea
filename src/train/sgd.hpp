#pragma once
// SGD with momentum, torch.optim.SGD semantics (dampening 0):
//   d = grad * grad_scale + weight_decay * param           (L2 decay through the gradient, not AdamW's)
//   buf = momentum * buf + d                                (buf starts at 0, so the first buf is d)
//   d = nesterov ? d + momentum * buf : buf                 (momentum 0: d unchanged)
//   param -= lr * d
// Weight decay is per group (ParamGroup.weight_decay), as for AdamW; SgdOptions has no global one.
#include <vector>

#include "core/tensor.hpp"
#include "train/adamw.hpp"  // ParamGroup

namespace ld::train {

struct SgdOptions {
  float lr = 1e-2f;
  float momentum = 0.0f;
  bool nesterov = false;  // needs momentum > 0 (torch's rule)
};

class Sgd {
 public:
  Sgd(std::vector<ParamGroup> groups, SgdOptions options);
  // One update from the parameters' current .grad (parameters without a grad are skipped, and their
  // momentum is left as it is). grad_scale multiplies every gradient first.
  void step(float grad_scale = 1.0f);
  void zero_grad();
  void set_lr(float lr) { options_.lr = lr; }
  float lr() const { return options_.lr; }
  int64_t steps() const { return step_; }

  // The state, for checkpoints: each parameter with its momentum buffer (undefined when momentum is
  // 0), in the order the groups listed them. copy_ into the buffers (and set_steps) to restore.
  struct ParamState {
    Tensor param, momentum_buffer;
  };
  std::vector<ParamState> state() const;
  void set_steps(int64_t steps);

 private:
  struct Slot {
    Tensor param, momentum_buffer;  // the buffer is undefined when momentum is 0
    float weight_decay;
  };
  std::vector<Slot> slots_;
  SgdOptions options_;
  int64_t step_ = 0;
};

}  // namespace ld::train
