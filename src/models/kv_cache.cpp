#include "models/kv_cache.hpp"

#include "core/error.hpp"
#include "models/tiny_transformer.hpp"

namespace ld::models {

KvCache::KvCache(int64_t n_layer, int64_t batch, int64_t n_kv_head, int64_t max_len, int64_t head_dim,
                 Device device)
    : batch_(batch), n_kv_head_(n_kv_head), max_len_(max_len), head_dim_(head_dim) {
  LD_CHECK(n_layer >= 1 && batch >= 1 && n_kv_head >= 1 && max_len >= 1 && head_dim >= 1,
           "KV cache: n_layer=", n_layer, ", batch=", batch, ", n_kv_head=", n_kv_head, ", max_len=", max_len,
           ", head_dim=", head_dim, " must all be positive");
  for (int64_t i = 0; i < n_layer; ++i) {
    k_.push_back(zeros({batch, n_kv_head, max_len, head_dim}, DType::f32, device));
    v_.push_back(zeros({batch, n_kv_head, max_len, head_dim}, DType::f32, device));
  }
}

KvCache::KvCache(const StackConfig& config, int64_t batch, int64_t max_len, Device device)
    : KvCache(config.n_layer, batch, config.n_kv_head, max_len, config.head_dim(), device) {}

void KvCache::check_room(int64_t n) const {
  LD_CHECK(length_ + n <= max_len_, "KV cache: ", n, " new tokens after ", length_, " cached exceed max_len=",
           max_len_);
}

std::pair<Tensor, Tensor> KvCache::append(int64_t layer, const Tensor& k, const Tensor& v) {
  LD_CHECK(layer >= 0 && layer < n_layer(), "KV cache: layer ", layer, " out of range (", n_layer(), " layers)");
  const Shape expected{batch_, n_kv_head_, k.dim() == 4 ? k.size(2) : -1, head_dim_};
  LD_CHECK(k.shape() == expected && v.shape() == expected, "KV cache: k ", shape_str(k.shape()), " and v ",
           shape_str(v.shape()), " must be [B=", batch_, ", Hkv=", n_kv_head_, ", T, D=", head_dim_, "]");
  const int64_t t = k.size(2);
  check_room(t);
  // A cache made elsewhere than the model runs (a model moved after make_cache) follows it here.
  if (k_[static_cast<size_t>(layer)].device() != k.device()) {
    k_[static_cast<size_t>(layer)] = k_[static_cast<size_t>(layer)].to(k.device());
    v_[static_cast<size_t>(layer)] = v_[static_cast<size_t>(layer)].to(k.device());
  }
  // copy_ is not recorded by autograd: the cache is for inference
  k_[static_cast<size_t>(layer)].narrow(2, length_, t).copy_(k);
  v_[static_cast<size_t>(layer)].narrow(2, length_, t).copy_(v);
  return {k_[static_cast<size_t>(layer)].narrow(2, 0, length_ + t),
          v_[static_cast<size_t>(layer)].narrow(2, 0, length_ + t)};
}

void KvCache::advance(int64_t n) {
  check_room(n);
  length_ += n;
}

}  // namespace ld::models
