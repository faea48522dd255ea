#pragma once
// llama2.c's fp32 checkpoint (.bin, format in ../shared/models/stories260K/README.md): a 7-int32
// header, then the weights in a fixed order. Read into Hugging Face-named LLaMA tensors, with the
// q/k rows permuted from llama2.c's interleaved-pair RoPE to HF's rotate-half convention, so the
// result computes what the original does in a LlamaForCausalLM.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "io/hf_config.hpp"

namespace ld::io {

struct Llama2cHeader {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, vocab_size = 0, seq_len = 0;

  bool shared_classifier() const { return vocab_size > 0; }  // negative: wcls stored after the rest
  int64_t vocab() const { return vocab_size < 0 ? -int64_t(vocab_size) : int64_t(vocab_size); }
  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return int64_t(n_kv_heads) * head_size(); }
};

struct Llama2cModel {
  Llama2cHeader header;
  HfModelConfig config;  // LLaMA, tie_word_embeddings = the header's shared classifier
  // In Hugging Face's order; no lm_head.weight when the classifier is tied (as HF saves it).
  std::vector<std::pair<std::string, Tensor>> tensors;
};

// Reads and validates the header: positive sizes, n_heads divides dim, n_kv_heads divides n_heads,
// an even head size, and a file size exactly what the header implies. Errors name the file.
Llama2cHeader read_llama2c_header(const std::filesystem::path& path);

Llama2cModel read_llama2c(const std::filesystem::path& path);

// Rows of a [n_heads * head_dim, in] projection, per head from interleaved pairs (2i, 2i+1) to
// halves (i, i + head_dim/2): HF's convert_llama_weights_to_hf.py permute().
Tensor permute_rope_rows(const Tensor& weight, int64_t n_heads);

// `liandan convert --from llama2c IN --to hf OUT_DIR`: config.json, generation_config.json and
// model.safetensors, built in a temporary sibling folder and renamed into place. An existing
// OUT_DIR is an error unless `force` (then replaced only once the new folder is complete).
void convert_llama2c_to_hf(const std::filesystem::path& in, const std::filesystem::path& out_dir, bool force);

}  // namespace ld::io
