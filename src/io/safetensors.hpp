#pragma once
// safetensors (https://huggingface.co/docs/safetensors): 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the
// raw little-endian data. Files are memory-mapped (privately: writes to a tensor never reach the
// file): a tensor read without conversion is a zero-copy view of the map (a copy when its bytes
// are not aligned to its element size, which the format does not promise); bf16/f16 are converted
// on load when asked for f32.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace ld::io {

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

class SafetensorsFile {
 public:
  // Maps the file and validates the header: every error names the file and the problem
  // (truncated, offsets outside the data or overlapping, unknown dtype, shape/size mismatch).
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  // The tensor in dtype `as` (default: as stored). A view of the map when no conversion is needed;
  // the map stays alive as long as any tensor taken from it. Unknown name: an error naming the file.
  Tensor get(const std::string& name, std::optional<DType> as = std::nullopt) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<void> map_;  // the mmap
  const char* data_ = nullptr;
  std::vector<TensorInfo> tensors_;          // in header order
  std::map<std::string, size_t> index_;       // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (in the given order, each made contiguous) to a temporary name next to `path`,
// then renames it into place: a failure never leaves a damaged file.
void save_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// All tensors of a Hugging Face checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json. Converted to `as` (f32 by default) where stored otherwise.
std::map<std::string, Tensor> load_checkpoint(const std::filesystem::path& dir, std::optional<DType> as = DType::f32);

}  // namespace ld::io
