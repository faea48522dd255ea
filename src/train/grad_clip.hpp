#pragma once
// Gradient clipping by global norm, torch.nn.utils.clip_grad_norm_ semantics (norm_type 2):
//   norm = sqrt(sum over all grads of g^2)            (accumulated in float64 on the host)
//   coef = max_norm / (norm + 1e-6)
//   if coef < 1: every grad *= coef, in place         (so a norm just under max_norm, within 1e-6,
//                                                      is scaled by a coefficient a hair below 1, as torch does)
// A non-finite norm (an inf or nan gradient) is returned as is and nothing is scaled: the caller
// skips the step (torch 1.13 would multiply every gradient by nan instead). With fp16 loss scaling,
// unscale the gradients (LossScaler::unscale) before clipping so max_norm means the true norm.
#include <vector>

#include "core/tensor.hpp"

namespace ld::train {

// Global L2 norm of the gradients of `params` (parameters without a grad are skipped), in float64;
// gradients on a device are summed there in f32 (as torch does) and only the sums are read back.
double grad_norm(const std::vector<Tensor>& params);

// Multiplies every defined gradient by `factor` in place.
void scale_grads(const std::vector<Tensor>& params, double factor);

// Returns the norm before clipping; scales the gradients when it is finite and above max_norm.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The scaling half of it, given the norm (data parallel computes it over the ranks' shards).
void clip_grads_to(const std::vector<Tensor>& params, double norm, double max_norm);

}  // namespace ld::train
