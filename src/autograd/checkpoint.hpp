#pragma once
// Activation checkpointing: run fn without saving anything for backward, and run it again during
// backward to rebuild what its backward rules need. Trades one extra forward for the memory of
// every intermediate inside fn. Parameters fn uses are found automatically; the
// default generator is rewound for the recompute so dropout masks match (a dropout inside fn that
// draws from another generator would get new masks).
#include <functional>
#include <vector>

#include "core/tensor.hpp"

namespace ld::autograd {

using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs);

}  // namespace ld::autograd
