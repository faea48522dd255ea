// Scaled-dot-product attention (see AttentionArgs): a tiled kernel with online softmax in the
// FlashAttention-2 loop order, in FP32 on the CUDA cores. Correct first: it is not tuned for
// Hopper yet (no tensor cores, TMA or warp specialisation), which is the next step for speed.
//
// Forward: one block of 8 warps per (batch, head, tile of 32 queries). Key/value tiles of 32 keys
// go through shared memory; warp w owns query rows w, w+8, w+16, w+24, lane j scores key j, and
// lane l accumulates output dims l, l+32, ... . A running max and sum per row give lse = max +
// log(sum) for the backward. Rows that see no key give 0 and lse = -inf, as on the CPU.
// Backward: one block per (batch, kv head, tile of 32 keys), looping over the query heads of its
// group and the query tiles that see it: P is recomputed from lse, dS = P * (dP - delta) * scale,
// dK and dV accumulate in registers, and dQ is added with atomicAdd (so its last bits vary from
// run to run).
// With AttentionArgs::allow_bf16, head dims 64 and 128 (masked or not) go to the tensor-core kernels instead
// (attention_tc.cu), which keep the same lse and buffer contract.
#include "backend/cuda/attention_tc.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace cuda_attention {

constexpr int kTile = 32;   // queries per forward block, keys per backward block, keys per step
constexpr int kWarps = 8;   // 256 threads
constexpr int kRowsPerWarp = kTile / kWarps;
constexpr int kMaxHeadDim = 256;

// The causal cut and the additive mask of one score (query qi, key kj), given its raw dot product.
struct ScoreRule {
  float scale;
  bool causal;
  int64_t causal_shift, kv_len;  // query i sees keys j <= i + causal_shift
  const float* mask;
  int64_t mask_stride[4];
  __device__ float operator()(float dot, int64_t b, int64_t h, int64_t qi, int64_t kj) const {
    if (kj >= kv_len || (causal && kj > qi + causal_shift)) return -INFINITY;
    float s = dot * scale;
    if (mask) s += mask[b * mask_stride[0] + h * mask_stride[1] + qi * mask_stride[2] + kj * mask_stride[3]];
    return s;
  }
};

ScoreRule score_rule(const AttentionArgs& a) {
  ScoreRule r{a.scale, a.causal, a.kv_len - a.q_len, a.kv_len, a.mask, {}};
  for (int i = 0; i < 4; ++i) r.mask_stride[i] = a.mask_stride[i];
  return r;
}

// Keys [0, end) matter to queries [q0, q0 + n).
__device__ inline int64_t key_end(const AttentionArgs& a, int64_t q0, int64_t n) {
  if (!a.causal) return a.kv_len;
  return max(int64_t(0), min(a.kv_len, q0 + n + a.kv_len - a.q_len));
}

// rows x D of a strided tensor into shared memory with row stride ld (zeros past `valid` rows).
__device__ inline void load_rows(const float* src, int64_t row_stride, int valid, int D, float* dst, int ld,
                                 float factor = 1.0f) {
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, d = e % D;
    dst[r * ld + d] = r < valid ? src[r * row_stride + d] * factor : 0.0f;
  }
}

template <int ND>  // ND * 32 >= head_dim
__global__ void __launch_bounds__(kWarps * 32) forward_kernel(AttentionArgs a, ScoreRule rule, const float* q,
                                                              const float* k, const float* v, float* out, float* lse) {
  extern __shared__ float smem[];
  const int D = int(a.head_dim), ld = D + 1;
  float* qs = smem;              // [kTile][ld], scaled by 1 (the rule applies the scale)
  float* ks = qs + kTile * ld;   // [kTile][ld]
  float* vs = ks + kTile * ld;   // [kTile][D]
  const int64_t q_tiles = (a.q_len + kTile - 1) / kTile;
  const int64_t bh = blockIdx.x / q_tiles, q0 = (blockIdx.x % q_tiles) * kTile;
  const int64_t b = bh / a.q_heads, h = bh % a.q_heads, hk = h / (a.q_heads / a.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int q_valid = int(min(int64_t(kTile), a.q_len - q0));

  load_rows(q + b * a.q_stride[0] + h * a.q_stride[1] + q0 * a.q_stride[2], a.q_stride[2], q_valid, D, qs, ld);
  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp], acc[kRowsPerWarp][ND];
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = -INFINITY;
    row_sum[r] = 0.0f;
    for (int t = 0; t < ND; ++t) acc[r][t] = 0.0f;
  }
  const float* khead = k + b * a.k_stride[0] + hk * a.k_stride[1];
  const float* vhead = v + b * a.v_stride[0] + hk * a.v_stride[1];
  const int64_t kend = key_end(a, q0, q_valid);
  for (int64_t k0 = 0; k0 < kend; k0 += kTile) {
    const int k_valid = int(min(int64_t(kTile), a.kv_len - k0));
    __syncthreads();  // the previous tile is no longer read
    load_rows(khead + k0 * a.k_stride[2], a.k_stride[2], k_valid, D, ks, ld);
    load_rows(vhead + k0 * a.v_stride[2], a.v_stride[2], k_valid, D, vs, D);
    __syncthreads();
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int i = warp + kWarps * r;
      if (i >= q_valid) break;  // warp-uniform
      float dot = 0.0f;
      for (int d = 0; d < D; ++d) dot += qs[i * ld + d] * ks[lane * ld + d];
      const float s = rule(dot, b, h, q0 + i, k0 + lane);
      const float m_new = fmaxf(row_max[r], cuda::warp_max(s));
      const float shift = m_new == -INFINITY ? 0.0f : m_new;  // a row that has seen nothing keeps P = 0
      const float alpha = expf(row_max[r] - shift);
      const float p = expf(s - shift);
      row_sum[r] = row_sum[r] * alpha + cuda::warp_sum(p);
      row_max[r] = m_new;
      for (int t = 0; t < ND; ++t) acc[r][t] *= alpha;
      for (int j = 0; j < kTile; ++j) {
        const float pj = __shfl_sync(0xffffffffu, p, j);
        for (int t = 0; t < ND; ++t) {
          const int d = lane + 32 * t;
          if (d < D) acc[r][t] += pj * vs[j * D + d];
        }
      }
    }
  }
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = warp + kWarps * r;
    if (i >= q_valid) break;
    const float l = row_sum[r], inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* orow = out + b * a.o_stride[0] + h * a.o_stride[1] + (q0 + i) * a.o_stride[2];
    for (int t = 0; t < ND; ++t) {
      const int d = lane + 32 * t;
      if (d < D) orow[d] = acc[r][t] * inv;
    }
    if (lane == 0) lse[(b * a.q_heads + h) * a.q_len + q0 + i] = l > 0.0f ? row_max[r] + logf(l) : -INFINITY;
  }
}

// delta[b, h, t] = <dout, out> over the head dim (one warp per row).
__global__ void output_grad_dot_kernel(AttentionArgs a, const float* out, const float* dout, float* delta) {
  const int64_t rows = a.batch * a.q_heads * a.q_len;
  const int lane = threadIdx.x % 32;
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32; row < rows;
       row += int64_t(gridDim.x) * blockDim.x / 32) {
    const int64_t t = row % a.q_len, bh = row / a.q_len, h = bh % a.q_heads, b = bh / a.q_heads;
    const int64_t off = b * a.o_stride[0] + h * a.o_stride[1] + t * a.o_stride[2];
    float acc = 0.0f;
    for (int64_t d = lane; d < a.head_dim; d += 32) acc += out[off + d] * dout[off + d];
    acc = cuda::warp_sum(acc);
    if (lane == 0) delta[row] = acc;
  }
}

template <int NPT>  // NPT * kWarps >= head_dim: dims per thread of the dK/dV accumulators
__global__ void __launch_bounds__(kWarps * 32) backward_kernel(AttentionArgs a, ScoreRule rule, const float* q,
                                                               const float* k, const float* v, const float* dout,
                                                               const float* lse, const float* delta, float* dq,
                                                               float* dk, float* dv) {
  extern __shared__ float smem[];
  const int D = int(a.head_dim), ld = D + 1, sld = kTile + 1;
  float* ks = smem;
  float* vs = ks + kTile * ld;
  float* qs = vs + kTile * ld;
  float* dos = qs + kTile * ld;
  float* ps = dos + kTile * ld;  // [kTile queries][sld]
  float* dss = ps + kTile * sld;
  float* lse_s = dss + kTile * sld;
  float* delta_s = lse_s + kTile;

  const int64_t k_tiles = (a.kv_len + kTile - 1) / kTile;
  const int64_t bhk = blockIdx.x / k_tiles, k0 = (blockIdx.x % k_tiles) * kTile;
  const int64_t b = bhk / a.kv_heads, hk = bhk % a.kv_heads, group = a.q_heads / a.kv_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int k_valid = int(min(int64_t(kTile), a.kv_len - k0));
  load_rows(k + b * a.k_stride[0] + hk * a.k_stride[1] + k0 * a.k_stride[2], a.k_stride[2], k_valid, D, ks, ld);
  load_rows(v + b * a.v_stride[0] + hk * a.v_stride[1] + k0 * a.v_stride[2], a.v_stride[2], k_valid, D, vs, ld);

  float dk_acc[NPT], dv_acc[NPT];
  for (int t = 0; t < NPT; ++t) dk_acc[t] = dv_acc[t] = 0.0f;
  // The first query that sees key k0 (causal), rounded down to a tile.
  const int64_t first_q = a.causal ? max(int64_t(0), min(a.q_len, k0 - (a.kv_len - a.q_len))) / kTile * kTile : 0;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    const int64_t row0 = (b * a.q_heads + h) * a.q_len;
    for (int64_t q0 = first_q; q0 < a.q_len; q0 += kTile) {
      const int q_valid = int(min(int64_t(kTile), a.q_len - q0));
      __syncthreads();  // the previous tile's shared data is no longer read
      load_rows(q + b * a.q_stride[0] + h * a.q_stride[1] + q0 * a.q_stride[2], a.q_stride[2], q_valid, D, qs, ld);
      load_rows(dout + b * a.o_stride[0] + h * a.o_stride[1] + q0 * a.o_stride[2], a.o_stride[2], q_valid, D, dos,
                ld);
      if (threadIdx.x < kTile) {
        const bool valid = int(threadIdx.x) < q_valid;
        lse_s[threadIdx.x] = valid ? lse[row0 + q0 + threadIdx.x] : -INFINITY;
        delta_s[threadIdx.x] = valid ? delta[row0 + q0 + threadIdx.x] : 0.0f;
      }
      __syncthreads();
      // P and dS: warp w has query rows w + 8r, lane j key j.
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int i = warp + kWarps * r, j = lane;
        float dot = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; ++d) {
          dot += qs[i * ld + d] * ks[j * ld + d];
          dp += dos[i * ld + d] * vs[j * ld + d];
        }
        const float s = i < q_valid ? rule(dot, b, h, q0 + i, k0 + j) : -INFINITY;
        const float p = lse_s[i] == -INFINITY || s == -INFINITY ? 0.0f : expf(s - lse_s[i]);
        ps[i * sld + j] = p;
        dss[i * sld + j] = p * (dp - delta_s[i]) * rule.scale;
      }
      __syncthreads();
      // dV[j] += P^T dO, dK[j] += dS^T Q: lane j, dims warp + 8t.
      for (int i = 0; i < q_valid; ++i) {
        const float p = ps[i * sld + lane], ds = dss[i * sld + lane];
        for (int t = 0; t < NPT; ++t) {
          const int d = warp + kWarps * t;
          if (d < D) {
            dv_acc[t] += p * dos[i * ld + d];
            dk_acc[t] += ds * qs[i * ld + d];
          }
        }
      }
      // dQ[i] += dS K: lane i, dims warp + 8t, added to global memory.
      if (lane < q_valid) {
        float* dqrow = dq + (row0 + q0 + lane) * D;
        for (int t = 0; t < NPT; ++t) {
          const int d = warp + kWarps * t;
          if (d >= D) break;
          float acc = 0.0f;
          for (int j = 0; j < k_valid; ++j) acc += dss[lane * sld + j] * ks[j * ld + d];
          atomicAdd(dqrow + d, acc);
        }
      }
    }
  }
  if (lane < k_valid) {
    const int64_t row = (b * a.kv_heads + hk) * a.kv_len + k0 + lane;
    for (int t = 0; t < NPT; ++t) {
      const int d = warp + kWarps * t;
      if (d < D) {
        dk[row * D + d] = dk_acc[t];
        dv[row * D + d] = dv_acc[t];
      }
    }
  }
}

void check_args(const AttentionArgs& a) {
  LD_ASSERT(a.batch >= 0 && a.q_heads >= 0 && a.kv_heads >= 0 && a.q_len >= 0 && a.kv_len >= 0 && a.head_dim >= 0,
            "attention: negative size");
  LD_ASSERT(a.kv_heads > 0 ? a.q_heads % a.kv_heads == 0 : a.q_heads == 0, "attention: q_heads=", a.q_heads,
            " is not a multiple of kv_heads=", a.kv_heads);
  LD_CHECK(a.head_dim <= kMaxHeadDim, "attention on CUDA: head_dim ", a.head_dim, " is over the supported ",
           kMaxHeadDim);
}

// Launches kernel with dynamic shared memory `bytes`, raising the per-kernel limit when needed.
template <typename Kernel, typename... Args>
void launch(Kernel kernel, int64_t blocks, size_t bytes, cudaStream_t s, Args... args) {
  if (bytes > 48 * 1024) LD_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  LD_CUDA_LAUNCH(kernel, unsigned(blocks), kWarps * 32, bytes, s)(args...);
  LD_CUDA_CHECK_LAUNCH();
}

}  // namespace cuda_attention

using namespace cuda_attention;

void CudaBackend::attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                                    float* lse) {
  check_args(a);
  const int64_t blocks = a.batch * a.q_heads * ((a.q_len + kTile - 1) / kTile);
  if (blocks == 0 || a.head_dim == 0) return;
  if (cuda_attention_tc::applies(a, {q, k, v, out})) return cuda_attention_tc::forward(a, q, k, v, out, lse, stream());
  const size_t bytes = sizeof(float) * size_t(kTile * (2 * (a.head_dim + 1) + a.head_dim));
  const ScoreRule rule = score_rule(a);
  cudaStream_t s = stream();
  if (a.head_dim <= 64)
    launch(forward_kernel<2>, blocks, bytes, s, a, rule, q, k, v, out, lse);
  else if (a.head_dim <= 128)
    launch(forward_kernel<4>, blocks, bytes, s, a, rule, q, k, v, out, lse);
  else
    launch(forward_kernel<8>, blocks, bytes, s, a, rule, q, k, v, out, lse);
}

void CudaBackend::attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                     const float* out, const float* dout, const float* lse, float* dq, float* dk,
                                     float* dv) {
  check_args(a);
  const int64_t D = a.head_dim;
  const int64_t q_size = a.batch * a.q_heads * a.q_len * D, kv_size = a.batch * a.kv_heads * a.kv_len * D;
  cudaStream_t s = stream();
  LD_CUDA_CHECK(cudaMemsetAsync(dq, 0, size_t(q_size) * sizeof(float), s));
  if (a.batch * a.q_heads * a.q_len * a.kv_len == 0 || D == 0) {
    LD_CUDA_CHECK(cudaMemsetAsync(dk, 0, size_t(kv_size) * sizeof(float), s));
    LD_CUDA_CHECK(cudaMemsetAsync(dv, 0, size_t(kv_size) * sizeof(float), s));
    return;
  }
  const int64_t rows = a.batch * a.q_heads * a.q_len;
  std::shared_ptr<Storage> delta = allocate(size_t(rows) * sizeof(float));
  float* delta_p = static_cast<float*>(delta->data());
  LD_CUDA_LAUNCH(output_grad_dot_kernel, cuda::grid_for(rows * 32), cuda::kThreads, 0, s)(a, out, dout, delta_p);
  LD_CUDA_CHECK_LAUNCH();
  if (cuda_attention_tc::applies(a, {q, k, v, out, dout, dq, dk, dv}))
    return cuda_attention_tc::backward(a, q, k, v, dout, lse, delta_p, dq, dk, dv, s);
  const int64_t blocks = a.batch * a.kv_heads * ((a.kv_len + kTile - 1) / kTile);
  const size_t bytes = sizeof(float) * size_t(4 * kTile * (D + 1) + 2 * kTile * (kTile + 1) + 2 * kTile);
  const ScoreRule rule = score_rule(a);
  if (D <= 64)
    launch(backward_kernel<8>, blocks, bytes, s, a, rule, q, k, v, dout, lse, delta_p, dq, dk, dv);
  else if (D <= 128)
    launch(backward_kernel<16>, blocks, bytes, s, a, rule, q, k, v, dout, lse, delta_p, dq, dk, dv);
  else
    launch(backward_kernel<32>, blocks, bytes, s, a, rule, q, k, v, dout, lse, delta_p, dq, dk, dv);
}

}  // namespace ld
