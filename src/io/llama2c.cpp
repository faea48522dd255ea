#include "io/llama2c.hpp"

#include <array>
#include <bit>
#include <cstring>
#include <fstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "io/safetensors.hpp"

namespace ld::io {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "llama2.c checkpoints are little-endian");

namespace {

constexpr int64_t kHeaderBytes = 7 * 4;

std::string header_str(const Llama2cHeader& h) {
  return detail::concat("dim=", h.dim, ", hidden_dim=", h.hidden_dim, ", n_layers=", h.n_layers, ", n_heads=",
                        h.n_heads, ", n_kv_heads=", h.n_kv_heads, ", vocab_size=", h.vocab_size, ", seq_len=",
                        h.seq_len);
}

// a * b, or an error when the header's sizes overflow 64 bits (a corrupt header, not a real model)
int64_t mul(int64_t a, int64_t b, const std::string& file) {
  int64_t r = 0;
  LD_CHECK(!__builtin_mul_overflow(a, b, &r), file, ": header sizes overflow (not a llama2.c checkpoint?)");
  return r;
}
int64_t add(int64_t a, int64_t b, const std::string& file) {
  int64_t r = 0;
  LD_CHECK(!__builtin_add_overflow(a, b, &r), file, ": header sizes overflow (not a llama2.c checkpoint?)");
  return r;
}

// Floats in the file after the header, without the separate classifier.
int64_t body_floats(const Llama2cHeader& h, const std::string& file) {
  const int64_t L = h.n_layers, C = h.dim, F = h.hidden_dim, KV = h.kv_dim();
  int64_t per_layer = add(add(2 * C, 2 * mul(C, C, file), file), add(2 * mul(KV, C, file), 3 * mul(F, C, file), file),
                          file);
  int64_t n = add(mul(h.vocab(), C, file), mul(L, per_layer, file), file);
  n = add(n, C, file);                                             // rms_final
  return add(n, mul(h.seq_len, h.head_size(), file), file);        // two legacy RoPE tables of seq_len*head_size/2
}

void check_header_sizes(const Llama2cHeader& h, const std::string& file) {
  LD_CHECK(h.dim > 0 && h.hidden_dim > 0 && h.n_layers > 0 && h.n_heads > 0 && h.n_kv_heads > 0 && h.vocab_size != 0 &&
               h.seq_len > 0,
           file, ": not a valid llama2.c header (", header_str(h), "): every size must be positive");
  LD_CHECK(h.dim % h.n_heads == 0, file, ": n_heads=", h.n_heads, " does not divide dim=", h.dim, " (",
           header_str(h), ")");
  LD_CHECK(h.n_heads % h.n_kv_heads == 0, file, ": n_kv_heads=", h.n_kv_heads, " does not divide n_heads=", h.n_heads,
           " (", header_str(h), ")");
  LD_CHECK(h.head_size() % 2 == 0, file, ": RoPE needs an even head size, got dim/n_heads=", h.head_size());
}

void check_file_size(const Llama2cHeader& h, int64_t actual, const std::string& file) {
  const int64_t body = mul(body_floats(h, file), 4, file) + kHeaderBytes;
  const int64_t classifier = mul(mul(h.vocab(), h.dim, file), 4, file);
  const int64_t expected = h.shared_classifier() ? body : body + classifier;
  if (actual == expected) return;
  const char* kind = h.shared_classifier() ? "shared classifier (vocab_size > 0)" : "separate classifier (vocab_size < 0)";
  const int64_t other = h.shared_classifier() ? body + classifier : body;
  LD_FAIL(file, ": ", actual < expected ? "truncated" : "too long", ": ", actual, " bytes, but its header (",
          header_str(h), ") implies ", expected, " bytes with a ", kind,
          actual == other ? "; the size would fit the other classifier layout, so the sign of vocab_size is wrong" : "");
}

// Reads the fp32 arrays in file order.
class FloatReader {
 public:
  explicit FloatReader(const fs::path& path) : path_(path.string()), in_(path, std::ios::binary) {
    LD_CHECK(in_.good(), path_, ": cannot open");
    in_.seekg(kHeaderBytes);
  }
  Tensor read(const Shape& shape) {
    Tensor t = empty(shape);
    in_.read(static_cast<char*>(t.raw()), std::streamsize(t.nbytes()));
    LD_CHECK(in_.good(), path_, ": truncated while reading the weights");
    return t;
  }
  // An array of `layers` matrices of `shape`: one tensor each.
  std::vector<Tensor> read_layers(int64_t layers, const Shape& shape) {
    std::vector<Tensor> out;
    for (int64_t i = 0; i < layers; ++i) out.push_back(read(shape));
    return out;
  }
  void skip_floats(int64_t n) {
    in_.seekg(n * 4, std::ios::cur);
    LD_CHECK(in_.good(), path_, ": truncated while skipping the legacy RoPE tables");
  }

 private:
  std::string path_;
  std::ifstream in_;
};

struct Llama2cArrays {
  Tensor embedding, rms_final, wcls;
  std::vector<Tensor> rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3;
};

Llama2cArrays read_arrays(const fs::path& path, const Llama2cHeader& h) {
  const int64_t L = h.n_layers, C = h.dim, F = h.hidden_dim, KV = h.kv_dim();
  FloatReader r(path);
  Llama2cArrays a;
  a.embedding = r.read({h.vocab(), C});
  a.rms_att = r.read_layers(L, {C});
  a.wq = r.read_layers(L, {C, C});
  a.wk = r.read_layers(L, {KV, C});
  a.wv = r.read_layers(L, {KV, C});
  a.wo = r.read_layers(L, {C, C});
  a.rms_ffn = r.read_layers(L, {C});
  a.w1 = r.read_layers(L, {F, C});
  a.w2 = r.read_layers(L, {C, F});
  a.w3 = r.read_layers(L, {F, C});
  a.rms_final = r.read({C});
  r.skip_floats(int64_t(h.seq_len) * h.head_size());  // freq_cis_real and freq_cis_imag: unused
  if (!h.shared_classifier()) a.wcls = r.read({h.vocab(), C});
  return a;
}

HfModelConfig config_from_header(const Llama2cHeader& h) {
  models::StackConfig s;
  s.kind = models::StackKind::llama;
  s.n_embd = h.dim;
  s.intermediate_size = h.hidden_dim;
  s.n_layer = h.n_layers;
  s.n_head = h.n_heads;
  s.n_kv_head = h.n_kv_heads;
  s.vocab_size = h.vocab();
  s.n_positions = h.seq_len;
  s.norm_eps = 1e-5;  // llama2.c's RMSNorm
  s.rope_theta = 10000.0;
  return make_hf_config(s, h.shared_classifier());
}

std::vector<std::pair<std::string, Tensor>> hf_tensors(const Llama2cHeader& h, const Llama2cArrays& a) {
  std::vector<std::pair<std::string, Tensor>> t;
  t.emplace_back("model.embed_tokens.weight", a.embedding);
  for (int64_t i = 0; i < h.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const size_t l = size_t(i);
    t.emplace_back(p + "input_layernorm.weight", a.rms_att[l]);
    t.emplace_back(p + "self_attn.q_proj.weight", permute_rope_rows(a.wq[l], h.n_heads));
    t.emplace_back(p + "self_attn.k_proj.weight", permute_rope_rows(a.wk[l], h.n_kv_heads));
    t.emplace_back(p + "self_attn.v_proj.weight", a.wv[l]);
    t.emplace_back(p + "self_attn.o_proj.weight", a.wo[l]);
    t.emplace_back(p + "post_attention_layernorm.weight", a.rms_ffn[l]);
    t.emplace_back(p + "mlp.gate_proj.weight", a.w1[l]);
    t.emplace_back(p + "mlp.up_proj.weight", a.w3[l]);
    t.emplace_back(p + "mlp.down_proj.weight", a.w2[l]);
  }
  t.emplace_back("model.norm.weight", a.rms_final);
  // Hugging Face omits a tied lm_head from the file; loaders take the embedding (tie_lm_head).
  if (!h.shared_classifier()) t.emplace_back("lm_head.weight", a.wcls);
  return t;
}

}  // namespace

Llama2cHeader read_llama2c_header(const fs::path& path) {
  const std::string file = path.string();
  std::error_code ec;
  LD_CHECK(fs::is_regular_file(path, ec), file, ": no such llama2.c checkpoint file");
  const int64_t size = int64_t(fs::file_size(path));
  LD_CHECK(size >= kHeaderBytes, file, ": truncated: ", size, " bytes, shorter than the 28-byte llama2.c header");
  std::ifstream in(path, std::ios::binary);
  std::array<int32_t, 7> v{};
  in.read(reinterpret_cast<char*>(v.data()), kHeaderBytes);
  LD_CHECK(in.good(), file, ": cannot read the header");
  Llama2cHeader h{v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
  check_header_sizes(h, file);
  check_file_size(h, size, file);
  return h;
}

Llama2cModel read_llama2c(const fs::path& path) {
  Llama2cModel m;
  m.header = read_llama2c_header(path);
  m.config = config_from_header(m.header);
  m.tensors = hf_tensors(m.header, read_arrays(path, m.header));
  return m;
}

Tensor permute_rope_rows(const Tensor& weight, int64_t n_heads) {
  LD_ASSERT(weight.dim() == 2 && n_heads > 0 && weight.size(0) % (2 * n_heads) == 0);
  const int64_t rows = weight.size(0), in = weight.size(1), half = rows / n_heads / 2;
  // per head: rows (half, 2) -> (2, half), so row 2i -> i and row 2i+1 -> i + half
  return weight.reshape({n_heads, half, 2, in}).transpose(1, 2).contiguous().reshape({rows, in});
}

void convert_llama2c_to_hf(const fs::path& in, const fs::path& out_dir, bool force) {
  check_output_folder(out_dir, force);  // fail before reading a large input
  Llama2cModel model = read_llama2c(in);
  write_folder_atomically(out_dir, force, [&](const fs::path& dir) {
    write_hf_config(dir, model.config);
    save_safetensors(dir / "model.safetensors", model.tensors, {{"format", "pt"}});
  });
}

}  // namespace ld::io
