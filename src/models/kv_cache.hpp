#pragma once
// A key/value cache for incremental decoding: per layer, k and v preallocated to
// [B, Hkv, max_len, D], and one length shared by the whole batch (prompts of equal length).
// Keys are stored after RoPE, so a cached key never needs its position again.
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace ld::models {

struct StackConfig;

class KvCache {
 public:
  // The buffers are made on `device`, where the model that appends to them runs.
  KvCache(int64_t n_layer, int64_t batch, int64_t n_kv_head, int64_t max_len, int64_t head_dim,
          Device device = kCPU);
  // Sized for a model config: n_layer, n_kv_head and head_dim from it.
  KvCache(const StackConfig& config, int64_t batch, int64_t max_len, Device device = kCPU);

  int64_t length() const { return length_; }  // tokens cached (per batch row)
  int64_t max_len() const { return max_len_; }
  int64_t batch() const { return batch_; }
  int64_t n_layer() const { return static_cast<int64_t>(k_.size()); }

  // Throws, naming max_len, unless `n` more tokens fit; called before a forward touches anything.
  void check_room(int64_t n) const;
  // Writes k, v [B, Hkv, T, D] of `layer` at positions length()..length()+T-1 and returns views of
  // the whole cached sequence including them, [B, Hkv, length()+T, D]. The length itself moves
  // only in advance(), once every layer has appended.
  std::pair<Tensor, Tensor> append(int64_t layer, const Tensor& k, const Tensor& v);
  void advance(int64_t n);
  void reset() { length_ = 0; }

 private:
  std::vector<Tensor> k_, v_;
  int64_t batch_, n_kv_head_, max_len_, head_dim_;
  int64_t length_ = 0;
};

}  // namespace ld::models
