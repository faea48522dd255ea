// Flash attention on the tensor cores (mma.sync m16n8k16, bf16 operands, f32 accumulation) for head
// dims 64 and 128, causal or not, GQA, with or without an additive mask (padded batches): the
// training case under bf16 autocast. The mask is read per score from global memory (it is usually
// broadcast over heads and often over queries, so it stays in cache) and added in f32.
// Buffers stay f32 in global memory: tiles arrive in shared memory as f32 through cp.async (double
// buffered, the next tile in flight while the current one is used) and are rounded to bf16 as the
// MMA fragments are built from them. Softmax statistics, accumulators and outputs are f32.
// Fragment layouts: mma_bf16.cuh. g = lane / 4 and t = lane % 4 below are that file's names.
//
// Forward: a block of 4 warps per (batch, head, 64 queries); warp w owns queries 16w..16w+15 and
// keeps them as A fragments in registers for the whole key loop. Per key tile: S = Q K^T on the
// tensor cores, the online softmax in registers (a row lives on the 4 lanes of a quad), then
// O += P V with P taken straight from the S accumulators. Writes out and lse as the FP32 kernel.
// Backward: a block of 4 warps per (batch, kv head, 64 keys); warp w owns keys 16w..16w+15 and
// loops over the query heads of its group and the query tiles that see its keys. It recomputes
// S^T = K Q^T and dP^T = V dO^T, forms P^T and dS^T in registers, accumulates dV += P^T dO and
// dK += dS^T Q there, and passes dS through shared memory for dQ += dS K, added with atomics (so
// dQ's last bits vary from run to run, as with the FP32 kernel).
#include <cfloat>
#include <cmath>

#include "backend/cuda/attention_tc.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/mma_bf16.cuh"

namespace ld::cuda_attention_tc {

namespace {

using cuda::cp_async_16;
using cuda::cp_async_commit;
using cuda::cp_async_wait;
using cuda::mma_bf16_16816;
using cuda::pack_bf16;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRowsPerWarp = 16;  // the MMA's m
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;
constexpr unsigned kFullMask = 0xffffffffu;

__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Which (query, key) pairs are hidden: keys past the end, and the causal cut (query i sees keys
// j <= i + shift, aligning the last query with the last key).
struct Visibility {
  bool causal;
  int64_t shift, kv_len;
  __device__ bool hidden(int64_t qi, int64_t kj) const { return kj >= kv_len || (causal && kj > qi + shift); }
  // Whether any pair of queries [q0, q0 + nq) x keys [k0, k0 + nk) may be hidden (block-uniform).
  __device__ bool any_hidden(int64_t q0, int64_t k0, int nk) const {
    return k0 + nk > kv_len || (causal && k0 + nk - 1 > q0 + shift);
  }
};

Visibility visibility(const AttentionArgs& a) { return {a.causal, a.kv_len - a.q_len, a.kv_len}; }

// The additive mask of head (b, h), in log2 units as the kernels keep scores; none when a.mask is null.
struct HeadMask {
  const float* base;
  int64_t q_stride, k_stride;
  // Only for a visible pair of a real query (qi < q_len, kj < kv_len). A finite mask stays finite
  // (PyTorch's finfo.min times log2e would overflow to -inf, and a row of them must still average V).
  __device__ float log2_at(int64_t qi, int64_t kj) const {
    if (base == nullptr) return 0.0f;
    const float m = base[qi * q_stride + kj * k_stride];
    return isinf(m) ? m : fminf(fmaxf(kLog2e * m, -FLT_MAX), FLT_MAX);
  }
};

__device__ HeadMask head_mask(const AttentionArgs& a, int64_t b, int64_t h) {
  if (a.mask == nullptr) return {nullptr, 0, 0};
  return {a.mask + b * a.mask_stride[0] + h * a.mask_stride[1], a.mask_stride[2], a.mask_stride[3]};
}

// Rows [row0, row0 + kRows) of a [len, D] f32 slice (row stride `stride`) into shared memory with
// leading dimension kLd, by cp.async; rows past len become zeros. Commit is left to the caller.
template <int D, int kRows, int kLd>
__device__ void load_tile_async(const float* src, int64_t stride, int64_t row0, int64_t len, float* dst) {
  constexpr int kChunksPerRow = D / 4;
  for (int c = threadIdx.x; c < kRows * kChunksPerRow; c += kThreads) {
    const int r = c / kChunksPerRow, col = (c % kChunksPerRow) * 4;
    const bool valid = row0 + r < len;
    cp_async_16(dst + r * kLd + col, valid ? src + (row0 + r) * stride + col : src, valid);
  }
}

// B fragment for n = 8 rows of a row-major [n][k] f32 tile (B[k][n] = tile[n][k]: K for Q K^T, Q
// for K Q^T): k pairs are adjacent in memory. `at` points at tile[n0][k0].
template <int kLd>
__device__ void b_frag_rows(const float* at, int g, int t, uint32_t (&b)[2]) {
  const float* p = at + g * kLd + 2 * t;
  const float2 lo = *reinterpret_cast<const float2*>(p), hi = *reinterpret_cast<const float2*>(p + 8);
  b[0] = pack_bf16(lo.x, lo.y);
  b[1] = pack_bf16(hi.x, hi.y);
}

// B fragment from a row-major [k][n] f32 tile (V for P V, dO for P^T dO, Q for dS^T Q, K for dS K):
// k pairs are a row apart. `at` points at tile[k0][n0].
template <int kLd>
__device__ void b_frag_cols(const float* at, int g, int t, uint32_t (&b)[2]) {
  const float* p = at + 2 * t * kLd + g;
  b[0] = pack_bf16(p[0], p[kLd]);
  b[1] = pack_bf16(p[8 * kLd], p[9 * kLd]);
}

// A fragment of 16 rows x 16 columns of a row-major f32 tile. `at` points at tile[m0][k0].
template <int kLd>
__device__ void a_frag_rows(const float* at, int g, int t, uint32_t (&a)[4]) {
  const float* p = at + g * kLd + 2 * t;
  const float2 x0 = *reinterpret_cast<const float2*>(p), x1 = *reinterpret_cast<const float2*>(p + 8 * kLd);
  const float2 x2 = *reinterpret_cast<const float2*>(p + 8), x3 = *reinterpret_cast<const float2*>(p + 8 * kLd + 8);
  a[0] = pack_bf16(x0.x, x0.y);
  a[1] = pack_bf16(x1.x, x1.y);
  a[2] = pack_bf16(x2.x, x2.y);
  a[3] = pack_bf16(x3.x, x3.y);
}

// The accumulators of two adjacent 16x8 tiles (columns 16kk..16kk+15) as the A fragment of a 16x16
// operand, rounded to bf16.
__device__ void a_frag_from_acc(const float (&lo)[4], const float (&hi)[4], uint32_t (&a)[4]) {
  a[0] = pack_bf16(lo[0], lo[1]);
  a[1] = pack_bf16(lo[2], lo[3]);
  a[2] = pack_bf16(hi[0], hi[1]);
  a[3] = pack_bf16(hi[2], hi[3]);
}

__device__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(kFullMask, x, 1));
  return fmaxf(x, __shfl_xor_sync(kFullMask, x, 2));
}
__device__ float quad_sum(float x) {
  x += __shfl_xor_sync(kFullMask, x, 1);
  return x + __shfl_xor_sync(kFullMask, x, 2);
}

// --- forward

template <int D, int kBc>  // head dim, keys per tile
struct ForwardShape {
  static constexpr int kBr = kRowsPerWarp * kWarps;  // queries per block
  // Padded rows: K is read in adjacent pairs along a row, V in pairs a row apart; these pads spread
  // both over the banks.
  static constexpr int kKeyLd = D + 8, kValLd = D + 4;
  static constexpr int kKeyFloats = kBc * kKeyLd, kValFloats = kBc * kValLd;
  static constexpr size_t kSmemBytes = sizeof(float) * 2 * (kKeyFloats + kValFloats);
};

// This lane's A fragments of Q (rows row_lo and row_lo + 8; zeros past q_len), kept for the whole loop.
template <int D>
__device__ void load_q_frags(const float* qrow, int64_t row_stride, bool lo_ok, bool hi_ok, int t,
                             uint32_t (&qf)[D / 16][4]) {
  const float2 zero = make_float2(0.0f, 0.0f);
  #pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    #pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int d = kk * 16 + half * 8 + 2 * t;
      const float2 lo = lo_ok ? *reinterpret_cast<const float2*>(qrow + d) : zero;
      const float2 hi = hi_ok ? *reinterpret_cast<const float2*>(qrow + 8 * row_stride + d) : zero;
      qf[kk][2 * half] = pack_bf16(lo.x, lo.y);
      qf[kk][2 * half + 1] = pack_bf16(hi.x, hi.y);
    }
}

template <int D, int kBc>
__global__ void __launch_bounds__(kThreads) forward_kernel(AttentionArgs a, Visibility vis, const float* q,
                                                           const float* k, const float* v, float* out, float* lse) {
  using S = ForwardShape<D, kBc>;
  extern __shared__ __align__(16) float smem[];
  float* key_bufs = smem;                       // [2][kBc][kKeyLd]
  float* val_bufs = smem + 2 * S::kKeyFloats;   // [2][kBc][kValLd]

  const int64_t heads = a.batch * a.q_heads, q_tiles = ceil_div(a.q_len, S::kBr);
  const int64_t bh = blockIdx.x % heads, q0 = (q_tiles - 1 - blockIdx.x / heads) * S::kBr;  // causal: longest first
  const int64_t b = bh / a.q_heads, h = bh % a.q_heads, hk = h / (a.q_heads / a.kv_heads);
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  const int64_t row_lo = q0 + kRowsPerWarp * warp + g;  // this lane's rows: row_lo and row_lo + 8

  const float* khead = k + b * a.k_stride[0] + hk * a.k_stride[1];
  const float* vhead = v + b * a.v_stride[0] + hk * a.v_stride[1];
  const HeadMask mask = head_mask(a, b, h);
  const int64_t q_rows = min(int64_t(S::kBr), a.q_len - q0);
  const int64_t key_end = a.causal ? max(int64_t(0), min(a.kv_len, q0 + q_rows + vis.shift)) : a.kv_len;
  const int n_tiles = int(ceil_div(key_end, kBc));
  auto load_tile = [&](int j) {
    const int64_t k0 = int64_t(j) * kBc;
    load_tile_async<D, kBc, S::kKeyLd>(khead, a.k_stride[2], k0, a.kv_len, key_bufs + (j & 1) * S::kKeyFloats);
    load_tile_async<D, kBc, S::kValLd>(vhead, a.v_stride[2], k0, a.kv_len, val_bufs + (j & 1) * S::kValFloats);
  };
  if (n_tiles > 0) load_tile(0);
  cp_async_commit();

  uint32_t qf[D / 16][4];
  load_q_frags<D>(q + b * a.q_stride[0] + h * a.q_stride[1] + row_lo * a.q_stride[2], a.q_stride[2],
                  row_lo < a.q_len, row_lo + 8 < a.q_len, t, qf);
  float o[D / 8][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // max in log2 units; sum per lane
  const float scale_log2 = a.scale * kLog2e;

  for (int j = 0; j < n_tiles; ++j) {
    if (j + 1 < n_tiles) load_tile(j + 1);
    cp_async_commit();  // possibly empty: keeps "all but the newest group" meaning tile j
    cp_async_wait<1>();
    __syncthreads();
    const float* ks = key_bufs + (j & 1) * S::kKeyFloats;
    const float* vs = val_bufs + (j & 1) * S::kValFloats;
    const int64_t k0 = int64_t(j) * kBc;

    float s[kBc / 8][4] = {};  // S = Q K^T: s[nt] holds keys k0 + 8nt + 2t (+1), rows row_lo (+8)
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      #pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) {
        uint32_t kb[2];
        b_frag_rows<S::kKeyLd>(ks + nt * 8 * S::kKeyLd + kk * 16, g, t, kb);
        mma_bf16_16816(s[nt], qf[kk], kb);
      }
    const bool masked = vis.any_hidden(q0, k0, kBc);
    #pragma unroll
    for (int nt = 0; nt < kBc / 8; ++nt)
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t qi = row_lo + 8 * (e >> 1), kj = k0 + nt * 8 + 2 * t + (e & 1);
        s[nt][e] *= scale_log2;
        if (masked && vis.hidden(qi, kj))  // (keys past the end are hidden, so a tile without any is in range)
          s[nt][e] = -INFINITY;
        else if (qi < a.q_len)
          s[nt][e] += mask.log2_at(qi, kj);
      }
    // Online softmax per row r (row_lo + 8r); P overwrites S.
    #pragma unroll
    for (int r = 0; r < 2; ++r) {
      float m = row_max[r];
      #pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt) m = fmaxf(m, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      m = quad_max(m);
      const float base = m == -INFINITY ? 0.0f : m;  // a row that has seen nothing keeps P = 0
      const float alpha = exp2f(row_max[r] - base);
      row_max[r] = m;
      float sum = 0.0f;
      #pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt)
        #pragma unroll
        for (int c = 0; c < 2; ++c) {
          const float p = exp2f(s[nt][2 * r + c] - base);
          s[nt][2 * r + c] = p;
          sum += p;
        }
      row_sum[r] = row_sum[r] * alpha + sum;
      #pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        o[nd][2 * r] *= alpha;
        o[nd][2 * r + 1] *= alpha;
      }
    }
    // O += P V
    #pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      uint32_t pa[4];
      a_frag_from_acc(s[2 * kk], s[2 * kk + 1], pa);
      #pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        uint32_t vb[2];
        b_frag_cols<S::kValLd>(vs + kk * 16 * S::kValLd + nd * 8, g, t, vb);
        mma_bf16_16816(o[nd], pa, vb);
      }
    }
    __syncthreads();  // tile j's buffers are refilled by the next iteration's prefetch
  }
  cp_async_wait<0>();  // no copy may outlive the block (the last group is empty, but keep it explicit)

  #pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = row_lo + 8 * r;
    const float l = quad_sum(row_sum[r]);
    if (row >= a.q_len) continue;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* orow = out + b * a.o_stride[0] + h * a.o_stride[1] + row * a.o_stride[2];
    #pragma unroll
    for (int nd = 0; nd < D / 8; ++nd)
      *reinterpret_cast<float2*>(orow + nd * 8 + 2 * t) = make_float2(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
    if (t == 0) lse[bh * a.q_len + row] = l > 0.0f ? row_max[r] * kLn2 + logf(l) : -INFINITY;
  }
}

// --- backward

template <int D, int kBr>  // head dim, queries per tile
struct BackwardShape {
  static constexpr int kBc = kRowsPerWarp * kWarps;  // keys per block
  static constexpr int kLd = D + 8;                  // rows of K, V, Q, dO
  static constexpr int kDsLd = kBc + 8;              // rows of dS (bf16)
  static constexpr int kKvFloats = kBc * kLd, kQFloats = kBr * kLd;
  // K, V; Q and dO double buffered; lse and delta double buffered; then dS.
  static constexpr int kFloats = 2 * kKvFloats + 4 * kQFloats + 4 * kBr;
  static constexpr size_t kSmemBytes = sizeof(float) * kFloats + sizeof(__nv_bfloat16) * kBr * kDsLd;
  // dQ = dS K: (kBr / 16) row tiles x (D / 8) column tiles, split over the warps.
  static constexpr int kWarpsPerRowTile = kWarps / (kBr / kRowsPerWarp);
  static constexpr int kDqColTiles = D / 8 / kWarpsPerRowTile;
  static_assert(kBr % kRowsPerWarp == 0 && kWarps % (kBr / kRowsPerWarp) == 0, "dQ work must split over the warps");
};

template <int D, int kBr>
__global__ void __launch_bounds__(kThreads) backward_kernel(AttentionArgs a, Visibility vis, const float* q,
                                                            const float* k, const float* v, const float* dout,
                                                            const float* lse, const float* delta, float* dq,
                                                            float* dk, float* dv) {
  using S = BackwardShape<D, kBr>;
  constexpr int kBc = S::kBc, kLd = S::kLd;
  extern __shared__ __align__(16) float smem[];
  float* ks = smem;                          // [kBc][kLd]
  float* vs = ks + S::kKvFloats;             // [kBc][kLd]
  float* q_bufs = vs + S::kKvFloats;        // [2][kBr][kLd]
  float* do_bufs = q_bufs + 2 * S::kQFloats;
  float* lse_bufs = do_bufs + 2 * S::kQFloats;  // [2][kBr], log2 units, -inf past the end
  float* delta_bufs = lse_bufs + 2 * kBr;       // [2][kBr]
  __nv_bfloat16* ds_tile = reinterpret_cast<__nv_bfloat16*>(delta_bufs + 2 * kBr);  // [kBr][kDsLd]

  const int64_t kv_heads = a.batch * a.kv_heads;
  const int64_t bhk = blockIdx.x % kv_heads, k0 = (blockIdx.x / kv_heads) * kBc;  // causal: longest first
  const int64_t b = bhk / a.kv_heads, hk = bhk % a.kv_heads, group = a.q_heads / a.kv_heads;
  const int warp = threadIdx.x / 32, g = (threadIdx.x % 32) / 4, t = threadIdx.x % 4;
  const int kw = kRowsPerWarp * warp;  // this warp's keys: k0 + kw .. + 15; this lane's: k0 + kw + g (+8)

  load_tile_async<D, kBc, kLd>(k + b * a.k_stride[0] + hk * a.k_stride[1], a.k_stride[2], k0, a.kv_len, ks);
  load_tile_async<D, kBc, kLd>(v + b * a.v_stride[0] + hk * a.v_stride[1], a.v_stride[2], k0, a.kv_len, vs);

  // Work items: (query head of the group, query tile from the first one that sees key k0).
  const int64_t first_q = a.causal ? max(int64_t(0), min(a.q_len, k0 - vis.shift)) / kBr * kBr : 0;
  const int64_t q_tiles = ceil_div(a.q_len - first_q, kBr), items = group * q_tiles;
  auto item_head = [&](int64_t i) { return hk * group + i / q_tiles; };
  auto item_q0 = [&](int64_t i) { return first_q + (i % q_tiles) * kBr; };
  auto load_item = [&](int64_t i) {
    const int64_t h = item_head(i), q0 = item_q0(i);
    const int buf = int(i & 1);
    load_tile_async<D, kBr, kLd>(q + b * a.q_stride[0] + h * a.q_stride[1], a.q_stride[2], q0, a.q_len,
                                 q_bufs + buf * S::kQFloats);
    load_tile_async<D, kBr, kLd>(dout + b * a.o_stride[0] + h * a.o_stride[1], a.o_stride[2], q0, a.q_len,
                                 do_bufs + buf * S::kQFloats);
    const int64_t row0 = (b * a.q_heads + h) * a.q_len + q0;
    for (int r = threadIdx.x; r < kBr; r += kThreads) {  // plain loads: rows of lse need not be aligned
      const bool valid = q0 + r < a.q_len;
      lse_bufs[buf * kBr + r] = valid ? lse[row0 + r] * kLog2e : -INFINITY;
      delta_bufs[buf * kBr + r] = valid ? delta[row0 + r] : 0.0f;
    }
  };
  if (items > 0) load_item(0);
  cp_async_commit();  // K, V and item 0

  float dk_acc[D / 8][4] = {}, dv_acc[D / 8][4] = {};  // rows: keys k0 + kw + g (+8); columns: dims
  const float scale_log2 = a.scale * kLog2e;
  for (int64_t i = 0; i < items; ++i) {
    if (i + 1 < items) load_item(i + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int buf = int(i & 1);
    const float* qs = q_bufs + buf * S::kQFloats;
    const float* dos = do_bufs + buf * S::kQFloats;
    const float* lse_s = lse_bufs + buf * kBr;
    const float* delta_s = delta_bufs + buf * kBr;
    const int64_t h = item_head(i), q0 = item_q0(i);
    const HeadMask mask = head_mask(a, b, h);

    // S^T = K Q^T and dP^T = V dO^T: [nt] holds queries q0 + 8nt + 2t (+1), keys k0 + kw + g (+8).
    float st[kBr / 8][4] = {}, dpt[kBr / 8][4] = {};
    #pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t ka[4], va[4];
      a_frag_rows<kLd>(ks + kw * kLd + kk * 16, g, t, ka);
      a_frag_rows<kLd>(vs + kw * kLd + kk * 16, g, t, va);
      #pragma unroll
      for (int nt = 0; nt < kBr / 8; ++nt) {
        uint32_t qb[2], dob[2];
        b_frag_rows<kLd>(qs + nt * 8 * kLd + kk * 16, g, t, qb);
        b_frag_rows<kLd>(dos + nt * 8 * kLd + kk * 16, g, t, dob);
        mma_bf16_16816(st[nt], ka, qb);
        mma_bf16_16816(dpt[nt], va, dob);
      }
    }
    // P^T = exp(S^T * scale + mask - lse) (0 where hidden or the query saw nothing), dS^T = P^T (dP^T - delta) scale.
    const bool masked = vis.any_hidden(q0, k0, kBc);
    #pragma unroll
    for (int nt = 0; nt < kBr / 8; ++nt)
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qc = nt * 8 + 2 * t + (e & 1);
        const int64_t kj = k0 + kw + g + 8 * (e >> 1);
        // lse is -inf past the last query, so a pair that is not hidden has a real query and key
        const bool hide = lse_s[qc] == -INFINITY || (masked && vis.hidden(q0 + qc, kj));
        const float p = hide ? 0.0f : exp2f(st[nt][e] * scale_log2 + mask.log2_at(q0 + qc, kj) - lse_s[qc]);
        st[nt][e] = p;
        dpt[nt][e] = p * (dpt[nt][e] - delta_s[qc]) * a.scale;
      }
    // dV += P^T dO, dK += dS^T Q (k = the tile's queries).
    #pragma unroll
    for (int kk = 0; kk < kBr / 16; ++kk) {
      uint32_t pa[4], dsa[4];
      a_frag_from_acc(st[2 * kk], st[2 * kk + 1], pa);
      a_frag_from_acc(dpt[2 * kk], dpt[2 * kk + 1], dsa);
      #pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        uint32_t dob[2], qb[2];
        b_frag_cols<kLd>(dos + kk * 16 * kLd + nd * 8, g, t, dob);
        b_frag_cols<kLd>(qs + kk * 16 * kLd + nd * 8, g, t, qb);
        mma_bf16_16816(dv_acc[nd], pa, dob);
        mma_bf16_16816(dk_acc[nd], dsa, qb);
      }
    }
    // dS (queries x keys, bf16) to shared memory for dQ.
    #pragma unroll
    for (int nt = 0; nt < kBr / 8; ++nt)
      #pragma unroll
      for (int e = 0; e < 4; ++e)
        ds_tile[(nt * 8 + 2 * t + (e & 1)) * S::kDsLd + kw + g + 8 * (e >> 1)] = __float2bfloat16_rn(dpt[nt][e]);
    __syncthreads();
    // dQ += dS K: warp w has query rows 16 (w % row tiles) .. + 15 and a share of the dims.
    const int row_tile = warp % (kBr / kRowsPerWarp), col_tile0 = (warp / (kBr / kRowsPerWarp)) * S::kDqColTiles;
    const int64_t q_lo = q0 + row_tile * kRowsPerWarp + g;  // this lane's queries: q_lo and q_lo + 8
    float* dq_lo = dq + ((b * a.q_heads + h) * a.q_len + q_lo) * D;
    uint32_t dsf[kBc / 16][4];
    #pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      const __nv_bfloat16* p = ds_tile + (row_tile * kRowsPerWarp + g) * S::kDsLd + kk * 16 + 2 * t;
      dsf[kk][0] = *reinterpret_cast<const uint32_t*>(p);
      dsf[kk][1] = *reinterpret_cast<const uint32_t*>(p + 8 * S::kDsLd);
      dsf[kk][2] = *reinterpret_cast<const uint32_t*>(p + 8);
      dsf[kk][3] = *reinterpret_cast<const uint32_t*>(p + 8 * S::kDsLd + 8);
    }
    #pragma unroll
    for (int c = 0; c < S::kDqColTiles; ++c) {
      const int nd = col_tile0 + c;
      float acc[4] = {};
      #pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        uint32_t kb[2];
        b_frag_cols<kLd>(ks + kk * 16 * kLd + nd * 8, g, t, kb);
        mma_bf16_16816(acc, dsf[kk], kb);
      }
      if (q_lo < a.q_len) atomicAdd(reinterpret_cast<float2*>(dq_lo + nd * 8 + 2 * t), make_float2(acc[0], acc[1]));
      if (q_lo + 8 < a.q_len)
        atomicAdd(reinterpret_cast<float2*>(dq_lo + 8 * D + nd * 8 + 2 * t), make_float2(acc[2], acc[3]));
    }
    __syncthreads();  // this item's buffers and dS are rewritten next
  }
  cp_async_wait<0>();  // K and V were waited for only when there was an item

  #pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t key = k0 + kw + g + 8 * r;
    if (key >= a.kv_len) continue;
    const int64_t off = (bhk * a.kv_len + key) * D;
    #pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      *reinterpret_cast<float2*>(dk + off + nd * 8 + 2 * t) = make_float2(dk_acc[nd][2 * r], dk_acc[nd][2 * r + 1]);
      *reinterpret_cast<float2*>(dv + off + nd * 8 + 2 * t) = make_float2(dv_acc[nd][2 * r], dv_acc[nd][2 * r + 1]);
    }
  }
}

// Launches kernel on `blocks` blocks of kThreads with `bytes` of dynamic shared memory (over the
// 48 KiB default, so the limit is raised first).
template <typename Kernel, typename... Args>
void launch(Kernel kernel, int64_t blocks, size_t bytes, cudaStream_t stream, Args... args) {
  LD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  LD_CUDA_LAUNCH(kernel, unsigned(blocks), kThreads, bytes, stream)(args...);
  LD_CUDA_CHECK_LAUNCH();
}

template <int D, int kBc>
void forward_for(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out, float* lse,
                 cudaStream_t stream) {
  using S = ForwardShape<D, kBc>;
  const int64_t blocks = a.batch * a.q_heads * ceil_div(a.q_len, S::kBr);
  launch(forward_kernel<D, kBc>, blocks, S::kSmemBytes, stream, a, visibility(a), q, k, v, out, lse);
}

template <int D, int kBr>
void backward_for(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
                  const float* lse, const float* delta, float* dq, float* dk, float* dv, cudaStream_t stream) {
  using S = BackwardShape<D, kBr>;
  const int64_t blocks = a.batch * a.kv_heads * ceil_div(a.kv_len, S::kBc);
  launch(backward_kernel<D, kBr>, blocks, S::kSmemBytes, stream, a, visibility(a), q, k, v, dout, lse, delta, dq,
         dk, dv);
}

}  // namespace

bool applies(const AttentionArgs& a, std::initializer_list<const void*> buffers) {
  if (!a.allow_bf16 || (a.head_dim != 64 && a.head_dim != 128)) return false;
  for (const int64_t* strides : {a.q_stride, a.k_stride, a.v_stride, a.o_stride})
    for (int i = 0; i < 3; ++i)
      if (strides[i] % 4 != 0) return false;
  for (const void* p : buffers)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

// Tiles: the forward keeps two K and two V tiles in shared memory, so 128-dim heads take 32 keys a
// step; the backward keeps dK and dV for 16 keys x D per warp in registers, so 128-dim heads take
// 32 queries a step to leave room for S^T and dP^T.
void forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out, float* lse,
             cudaStream_t stream) {
  if (a.head_dim == 64)
    forward_for<64, 64>(a, q, k, v, out, lse, stream);
  else
    forward_for<128, 32>(a, q, k, v, out, lse, stream);
}

void backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
              const float* lse, const float* delta, float* dq, float* dk, float* dv, cudaStream_t stream) {
  if (a.head_dim == 64)
    backward_for<64, 64>(a, q, k, v, dout, lse, delta, dq, dk, dv, stream);
  else
    backward_for<128, 32>(a, q, k, v, dout, lse, delta, dq, dk, dv, stream);
}

}  // namespace ld::cuda_attention_tc
