#pragma once
// bf16 weights for inference: half the bytes to stream per decoded token, which is what bounds a
// decode step on the CPU. Activations, norms, biases and the KV cache stay f32; the Linear kernel
// widens each bf16 weight to f32 in registers (Backend::linear_bf16), so only the weights are rounded.
#include <cstdint>

namespace ld::nn {
class Module;
}

namespace ld::infer {

// Converts, in place, the weight of every nn::Linear, nn::Conv1D and nn::Embedding under `model` to bf16 (round
// to nearest even) and marks it as not requiring gradients. In place means every handle to a weight
// sees the change, so tied weights (lm_head and the token embedding) stay one tensor and the
// state_dict reports bf16. Forward only: ops::linear, ops::matmul (bf16 b) and ops::embedding with a
// bf16 weight refuse to
// record a backward. Returns the number of tensors converted (a tied tensor counts once).
int64_t to_bf16_weights(nn::Module& model);

}  // namespace ld::infer
