#pragma once
// The one way a model folder's weights go into a model: read the safetensors (a damaged file is
// reported as itself, naming the file and tensor), map the names (normalize), then a strict load
// whose errors say that the weights disagree with config.json.
#include <filesystem>
#include <functional>

#include "nn/module.hpp"

namespace ld::models {

using NormalizeCheckpoint = std::function<nn::StateDict(nn::StateDict)>;

void load_weights(nn::Module& model, const std::filesystem::path& dir, const NormalizeCheckpoint& normalize);

}  // namespace ld::models
