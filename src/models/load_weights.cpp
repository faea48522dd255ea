#include "models/load_weights.hpp"

#include "core/error.hpp"
#include "io/safetensors.hpp"

namespace ld::models {

void load_weights(nn::Module& model, const std::filesystem::path& dir, const NormalizeCheckpoint& normalize) {
  nn::StateDict tensors = io::load_checkpoint(dir);  // outside the try: file damage names the file
  try {
    model.load_state_dict(normalize(std::move(tensors)), /*strict=*/true);
  } catch (const Error& e) {
    LD_FAIL(dir.string(), ": the weights do not match config.json: ", e.what());
  }
}

}  // namespace ld::models
