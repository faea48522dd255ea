// The decode step as a fixed sequence of backend calls on buffers allocated once. Each call is the
// one the general forward reaches for the same op (Backend::gemm / linear_bf16 for a projection,
// layernorm_forward / rmsnorm_forward with the residual add fused, rope, attention_forward over the
// cache, unary GELU, swiglu_forward), on the same data layouts, so the logits match.
#include "infer/decode_step.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/spin_pool.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "infer/screened_head.hpp"
#include "infer/decode_weights.hpp"
#include "models/causal_lm.hpp"
#include "ops/autocast.hpp"

namespace ld::infer {

using detail::ModelWeights;
using detail::NormWeights;
using detail::ProjectionWeights;
using detail::TableWeights;

namespace {

using Buffer = std::vector<float>;

// y [m, out] = x [m, in] W (+ bias). The bias is written first and accumulated onto: the sum is the
// general path's (product + bias) either way, as float addition commutes.
void project(Backend& be, const ProjectionWeights& p, int64_t m, const float* x, float* y) {
  if (p.bias != nullptr)
    for (int64_t r = 0; r < m; ++r) std::memcpy(y + r * p.out, p.bias, size_t(p.out) * sizeof(float));
  if (p.bf16 != nullptr) {
    be.linear_bf16(m, p.out, p.in, x, p.bf16, p.w_kn, y, p.bias != nullptr);
    return;
  }
  GemmArgs g;
  g.trans_b = !p.w_kn;
  g.m = m, g.n = p.out, g.k = p.in;
  g.a = x, g.lda = p.in;
  g.b = p.f32, g.ldb = p.w_kn ? p.out : p.in;
  g.c = y, g.ldc = p.out;
  g.beta = p.bias != nullptr ? 1.0f : 0.0f;
  be.gemm(g);
}

void embedding_row(const TableWeights& t, int64_t row, float* out) {
  if (t.f32 != nullptr) {
    std::memcpy(out, t.f32 + row * t.dim, size_t(t.dim) * sizeof(float));
    return;
  }
  const uint16_t* src = t.bf16 + row * t.dim;
  for (int64_t c = 0; c < t.dim; ++c) out[c] = bf16_to_f32(src[c]);
}

}  // namespace

struct DecodeStep::Impl {
  Backend& be = backend_for(kCPU);
  ModelWeights w;
  models::KvCache& cache;
  int64_t B, C, H, Hkv, D, F, V;
  // Per layer: the cache's k and v storage [B, Hkv, max_len, D] and its strides.
  std::vector<float*> k_cache, v_cache;
  int64_t cache_stride[3]{};
  // residual and sum alternate: the fused add + norm writes the new residual stream beside the old.
  Buffer residual, sum, normed, qkv, q, k, v, attn, proj, hidden, up, act, logits, lse, mask;
  std::vector<int64_t> positions;
  std::unique_ptr<ScreenedHead> screened_head;  // run_greedy's, built on its first call
  std::vector<int64_t> greedy;

  Impl(const models::CausalLM& model, models::KvCache& kv);
  void bind_cache();
  void embed(std::span<const int64_t> tokens);
  void set_mask(std::span<const int64_t> pad, int64_t slot, bool& masked);
  void norm(const NormWeights& n, const float* x, const float* res, float* sum_out, float* y);
  void add_norm(const NormWeights& n);
  void attention(const detail::LayerWeights& l, int64_t layer, int64_t slot, bool masked);
  void mlp(const detail::LayerWeights& l);
  void forward(std::span<const int64_t> tokens, std::span<const int64_t> pad);  // up to normed, cache advanced
  bool screens_head() const;
};

DecodeStep::Impl::Impl(const models::CausalLM& model, models::KvCache& kv)
    : w(detail::read_weights(model)), cache(kv) {
  B = cache.batch(), C = w.n_embd, H = w.n_head, Hkv = w.n_kv_head, D = w.head_dim, F = w.hidden, V = w.vocab;
  const int64_t L = static_cast<int64_t>(w.layers.size());
  LD_CHECK(cache.n_layer() == L, "fused decode: the KV cache has ", cache.n_layer(), " layers, the model ", L);
  residual.resize(size_t(B * C));
  sum.resize(size_t(B * C));
  normed.resize(size_t(B * C));
  qkv.resize(size_t(B * (H + 2 * Hkv) * D));
  q.resize(size_t(B * H * D));
  k.resize(size_t(B * Hkv * D));
  v.resize(size_t(B * Hkv * D));
  attn.resize(size_t(B * H * D));
  proj.resize(size_t(B * C));
  hidden.resize(size_t(B * F));
  up.resize(size_t(B * F));
  act.resize(size_t(B * F));
  logits.resize(size_t(B * V));
  lse.resize(size_t(B * H));
  mask.resize(size_t(B * cache.max_len()));
  positions.resize(size_t(B));
  bind_cache();
}

// KvCache hands out its storage only as views from append(); appending zero tokens gives the
// per-layer buffers' addresses (and checks the cache's shape against the model) without a write.
void DecodeStep::Impl::bind_cache() {
  const Tensor none = zeros({B, Hkv, 0, D});
  for (int64_t layer = 0; layer < cache.n_layer(); ++layer) {
    auto [kt, vt] = cache.append(layer, none, none);
    k_cache.push_back(kt.data<float>());
    v_cache.push_back(vt.data<float>());
    for (int i = 0; i < 3; ++i) cache_stride[i] = kt.stride(i);
  }
}

void DecodeStep::Impl::embed(std::span<const int64_t> tokens) {
  for (int64_t b = 0; b < B; ++b) {
    float* row = residual.data() + b * C;
    embedding_row(w.token_embedding, tokens[size_t(b)], row);
    if (!w.gpt2) continue;
    float* pos = sum.data();  // scratch: the position row, added as ops::add(wte, wpe) does
    embedding_row(w.position_embedding, positions[size_t(b)], pos);
    for (int64_t c = 0; c < C; ++c) row[c] = row[c] + pos[c];
  }
}

// The additive mask [B, slot + 1] of models::make_attention_context: -inf on padding keys and on keys
// sliding_window or more slots behind the query; `masked` false when nothing is blocked.
void DecodeStep::Impl::set_mask(std::span<const int64_t> pad, int64_t slot, bool& masked) {
  const int64_t total = slot + 1;
  const bool window = w.sliding_window > 0 && total > w.sliding_window;
  masked = window || std::any_of(pad.begin(), pad.end(), [](int64_t p) { return p > 0; });
  if (!masked) return;
  const int64_t width = cache.max_len();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < total; ++j) {
      const bool blocked = j < pad[size_t(b)] || (window && slot - j >= w.sliding_window);
      mask[size_t(b * width + j)] = blocked ? -std::numeric_limits<float>::infinity() : 0.0f;
    }
}

void DecodeStep::Impl::norm(const NormWeights& n, const float* x, const float* res, float* sum_out, float* y) {
  if (w.gpt2)
    be.layernorm_forward(B, C, x, res, n.weight, n.bias, n.eps, sum_out, y, nullptr, nullptr);
  else
    be.rmsnorm_forward(B, C, x, res, n.weight, n.eps, sum_out, y, nullptr);
}

// residual += proj, normed = norm(residual), as ops::add_layernorm / add_rmsnorm(proj, residual).
void DecodeStep::Impl::add_norm(const NormWeights& n) {
  norm(n, proj.data(), residual.data(), sum.data(), normed.data());
  residual.swap(sum);
}

void DecodeStep::Impl::attention(const detail::LayerWeights& l, int64_t layer, int64_t slot, bool masked) {
  // q, k, v of the new token: rows of c_attn's output (GPT-2), or LLaMA's projections with RoPE.
  const float *qp, *kp, *vp;
  int64_t q_row, kv_row;
  if (w.gpt2) {
    project(be, l.qkv, B, normed.data(), qkv.data());
    qp = qkv.data(), kp = qkv.data() + C, vp = qkv.data() + 2 * C;
    q_row = kv_row = 3 * C;
  } else {
    project(be, l.q, B, normed.data(), qkv.data());
    project(be, l.k, B, normed.data(), k.data());
    project(be, l.v, B, normed.data(), v.data());
    RopeArgs r{.batch = B, .seq = 1, .heads = H, .head_dim = D, .rotary_dim = D, .positions = positions.data(),
               .pos_batch_stride = 1, .theta = w.rope_theta, .layout = RopeLayout::half, .inverse = false};
    be.rope(r, qkv.data(), q.data());
    r.heads = Hkv;
    be.rope(r, k.data(), qkv.data() + B * H * D);  // the rotated k, after q's rows
    qp = q.data(), kp = qkv.data() + B * H * D, vp = v.data();
    q_row = H * D, kv_row = Hkv * D;
  }
  float* kc = k_cache[size_t(layer)];
  float* vc = v_cache[size_t(layer)];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hkv; ++h) {
      const int64_t at = b * cache_stride[0] + h * cache_stride[1] + slot * cache_stride[2];
      std::memcpy(kc + at, kp + b * kv_row + h * D, size_t(D) * sizeof(float));
      std::memcpy(vc + at, vp + b * kv_row + h * D, size_t(D) * sizeof(float));
    }
  AttentionArgs a;
  a.batch = B, a.q_heads = H, a.kv_heads = Hkv, a.q_len = 1, a.kv_len = slot + 1, a.head_dim = D;
  a.scale = float(1.0 / std::sqrt(double(D)));  // ops::attention's default
  a.causal = true;
  const int64_t q_stride[3] = {q_row, D, q_row}, o_stride[3] = {H * D, D, H * D};
  for (int i = 0; i < 3; ++i) {
    a.q_stride[i] = q_stride[i];
    a.k_stride[i] = a.v_stride[i] = cache_stride[i];
    a.o_stride[i] = o_stride[i];
  }
  if (masked) {
    a.mask = mask.data();
    a.mask_stride[0] = cache.max_len();  // [B, 1, 1, total]: the heads and the one query broadcast
    a.mask_stride[3] = 1;
  }
  be.attention_forward(a, qp, kc, vc, attn.data(), lse.data());
  project(be, l.o, B, attn.data(), proj.data());
}

void DecodeStep::Impl::mlp(const detail::LayerWeights& l) {
  if (w.gpt2) {
    project(be, l.up, B, normed.data(), hidden.data());
    be.unary(w.tanh_gelu ? UnaryOp::gelu_tanh : UnaryOp::gelu_erf, B * F, hidden.data(), act.data());
  } else {
    project(be, l.gate, B, normed.data(), hidden.data());
    project(be, l.up, B, normed.data(), up.data());
    be.swiglu_forward(B * F, hidden.data(), up.data(), act.data());
  }
  project(be, l.down, B, act.data(), proj.data());
}

DecodeStep::DecodeStep(const models::CausalLM& model, models::KvCache& cache)
    : impl_(std::make_unique<Impl>(model, cache)) {
  // The steps' products run on cpu::SpinPool; OpenMP's workers, still spinning after the prefill,
  // would compete with it for the cores.
  cpu::release_openmp_workers();
}

DecodeStep::~DecodeStep() = default;

void DecodeStep::Impl::forward(std::span<const int64_t> tokens, std::span<const int64_t> pad) {
  LD_CHECK(int64_t(tokens.size()) == B && int64_t(pad.size()) == B, "fused decode: ", tokens.size(),
           " tokens and ", pad.size(), " padding counts for a batch of ", B);
  cache.check_room(1);
  const int64_t slot = cache.length();
  if (w.gpt2)
    LD_CHECK(slot + 1 <= w.n_positions, "fused decode: ", slot + 1, " tokens exceed the model's n_positions=",
             w.n_positions, " (its learned position table)");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t id = tokens[size_t(b)], p = pad[size_t(b)];
    LD_CHECK(id >= 0 && id < V, "fused decode: token id ", id, " of row ", b, " is outside the vocabulary [0, ", V,
             ")");
    LD_CHECK(p >= 0 && p <= slot, "fused decode: row ", b, " has ", p, " padding slots but the cache holds ", slot);
    positions[size_t(b)] = slot - p;  // HF's position_ids: real tokens before this one
  }
  bool masked = false;
  set_mask(pad, slot, masked);
  embed(tokens);
  const auto& layers = w.layers;
  norm(layers.front().attn_norm, residual.data(), nullptr, nullptr, normed.data());
  for (size_t i = 0; i < layers.size(); ++i) {
    attention(layers[i], int64_t(i), slot, masked);
    add_norm(layers[i].mlp_norm);
    mlp(layers[i]);
    add_norm(i + 1 < layers.size() ? layers[i + 1].attn_norm : w.final_norm);
  }
  cache.advance(1);
}

// The head ScreenedHead can screen: [vocab, dim] without a bias, for the batches it takes.
bool DecodeStep::Impl::screens_head() const {
  const ProjectionWeights& h = w.lm_head;
  return !h.w_kn && h.bias == nullptr && B <= ScreenedHead::kMaxRows;
}

namespace {

std::unique_ptr<ScreenedHead> make_screened_head(const ProjectionWeights& h) {
  return h.f32 != nullptr ? std::make_unique<ScreenedHead>(h.f32, h.out, h.in)
                          : std::make_unique<ScreenedHead>(h.bf16, h.out, h.in);
}

}  // namespace

std::span<const float> DecodeStep::run(std::span<const int64_t> tokens, std::span<const int64_t> pad) {
  Impl& s = *impl_;
  s.forward(tokens, pad);
  project(s.be, s.w.lm_head, s.B, s.normed.data(), s.logits.data());
  return s.logits;
}

DecodeStep::Greedy DecodeStep::run_greedy(std::span<const int64_t> tokens, std::span<const int64_t> pad) {
  Impl& s = *impl_;
  if (!s.screens_head()) return {.tokens = {}, .logits = run(tokens, pad)};
  s.forward(tokens, pad);
  if (!s.screened_head) s.screened_head = make_screened_head(s.w.lm_head);
  s.greedy.resize(size_t(s.B));
  if (s.screened_head->argmax(s.B, s.normed.data(), s.greedy.data())) return {.tokens = s.greedy, .logits = {}};
  project(s.be, s.w.lm_head, s.B, s.normed.data(), s.logits.data());
  return {.tokens = {}, .logits = s.logits};
}

std::span<const float> DecodeStep::run_top_k(std::span<const int64_t> tokens, std::span<const int64_t> pad,
                                             int64_t k) {
  Impl& s = *impl_;
  // With k this large the screen would choose the full product anyway.
  if (!s.screens_head() || k < 1 || k * ScreenedHead::kFullProductShare > s.V) return run(tokens, pad);
  s.forward(tokens, pad);
  if (!s.screened_head) s.screened_head = make_screened_head(s.w.lm_head);
  if (!s.screened_head->top_k(s.B, s.normed.data(), k, s.logits.data()))
    project(s.be, s.w.lm_head, s.B, s.normed.data(), s.logits.data());
  return s.logits;
}

std::string fused_decode_unsupported(const models::CausalLM& model) {
  if (ops::autocast_precision() != ComputePrecision::f32) return "fused decode: autocast is active";
  return detail::unsupported_reason(model);
}

}  // namespace ld::infer
