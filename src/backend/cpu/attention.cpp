// Flash attention on the CPU (Dao et al., FlashAttention-2 loop order): queries and keys are cut
// into tiles, each (query tile, key tile) pair goes through small register-blocked products and an
// online softmax, and nothing of size Tq x Tk is ever allocated. The forward keeps a running max
// and sum per query row and saves lse = max + log(sum); the backward recomputes P per tile from q,
// k and lse. Causal tiles that no query in the tile can see are skipped. The backward reads dout
// with the output's strides (o_stride).
//
// The tile products are hand-written AVX-512 micro-kernels: on a 64 x 64 x 64 product in cache they
// measured faster than oneDNN's sgemm (about 240 vs 210 GFLOP/s on one core), they read strided
// rows ([B, T, H, D] projections seen as [B, H, T, D]) without a copy, and they skip the part of a
// diagonal tile that causal masking zeroes. Without AVX-512 a plain loop (vectorised by the
// compiler) does the same products.
#include <omp.h>

#if defined(__AVX512F__)
// GCC 12's own intrinsics trip -Wuninitialized (_mm512_undefined_ps initialises itself); the
// warning points into the header, so it is silenced there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/spin_pool.hpp"
#include "core/error.hpp"

namespace ld {

namespace {

constexpr int64_t kQueryTile = 64;  // Br: rows of a query tile
constexpr int64_t kKeyTile = 64;    // Bc: keys of a key tile (also the row stride of score tiles)
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------------
// Tile product: C[M x N] (+)= A[M x K] * B[K x N]. B and C are row-major with unit column stride;
// A is row-major (element (m, k) at a[m * lda + k]) or, with TransA, stored transposed (at
// a[k * lda + m]), which is how P^T dO and dS^T Q read the score tiles without transposing them.
//
// On a tile that the causal diagonal crosses, row r of the score tile sees columns c < r + diag.
// The products skip, per block of rows, what lies past that staircase: score columns nobody sees
// (Cut::columns, for S = Q K^T and dP = dO V^T; those columns are left unwritten), and zero
// probabilities on the inner dimension (Cut::k_end for P V and dS K, where A is the score tile;
// Cut::k_begin for P^T dO and dS^T Q, where the rows of C are keys).
enum class Cut : uint8_t { none, columns, k_end, k_begin };

// The part of a block of rows [m0, m0 + rows) a product has to compute.
struct BlockRange {
  int64_t n_end, k_begin, k_end;
};

BlockRange block_range(Cut cut, int64_t diag, int64_t m0, int64_t rows, int64_t N, int64_t K) {
  BlockRange r{N, 0, K};
  const int64_t last = m0 + rows - 1;
  if (cut == Cut::columns) r.n_end = std::clamp<int64_t>(last + diag, 0, N);
  if (cut == Cut::k_end) r.k_end = std::clamp<int64_t>(last + diag, 0, K);
  if (cut == Cut::k_begin) r.k_begin = std::clamp<int64_t>(m0 - diag + 1, 0, K);
  return r;
}

#if defined(__AVX512F__)

constexpr int kMaxRows = 6;     // MR: rows of C held in registers
constexpr int kMaxVectors = 4;  // NV: 16-float vectors of C per row (64 columns)

template <bool TransA, int MR, int NV>
void micro_kernel(int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                  bool accumulate, __mmask16 tail) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* brow = b + k * ldb;
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV - 1; ++j) bv[j] = _mm512_loadu_ps(brow + 16 * j);
    bv[NV - 1] = _mm512_maskz_loadu_ps(tail, brow + 16 * (NV - 1));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512 av = _mm512_set1_ps(TransA ? a[k * lda + i] : a[i * lda + k]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* cp = c + i * ldc + 16 * j;
      __mmask16 m = j == NV - 1 ? tail : __mmask16(0xFFFF);
      __m512 r = acc[i][j];
      if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, cp));
      _mm512_mask_storeu_ps(cp, m, r);
    }
}

using MicroKernel = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, bool, __mmask16);

template <bool TransA, int MR, int... NV>
constexpr std::array<MicroKernel, sizeof...(NV)> kernel_row(std::integer_sequence<int, NV...>) {
  return {&micro_kernel<TransA, MR, NV + 1>...};
}

template <bool TransA, int... MR>
constexpr std::array<std::array<MicroKernel, kMaxVectors>, sizeof...(MR)> kernel_table(
    std::integer_sequence<int, MR...>) {
  return {kernel_row<TransA, MR + 1>(std::make_integer_sequence<int, kMaxVectors>())...};
}

template <bool TransA>
constexpr auto kKernels = kernel_table<TransA>(std::make_integer_sequence<int, kMaxRows>());

// C rows [0, rows), columns [0, N) (+)= A rows x B over the inner range [k0, k1).
template <bool TransA>
void product_rows(int64_t rows, int64_t N, int64_t k0, int64_t k1, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  const float* ak = TransA ? a + k0 * lda : a + k0;
  for (int64_t n0 = 0; n0 < N; n0 += 16 * kMaxVectors) {
    int64_t cols = std::min<int64_t>(N - n0, 16 * kMaxVectors);
    int nv = int(ceil_div(cols, 16));
    __mmask16 tail = __mmask16((1u << (cols - 16 * (nv - 1))) - 1u);
    kKernels<TransA>[size_t(rows - 1)][size_t(nv - 1)](k1 - k0, ak, lda, b + k0 * ldb + n0, ldb, c + n0, ldc,
                                                        accumulate, tail);
  }
}

#else  // portable fallback

constexpr int kMaxRows = 1;

template <bool TransA>
void product_rows(int64_t rows, int64_t N, int64_t k0, int64_t k1, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t m = 0; m < rows; ++m) {
    float* crow = c + m * ldc;
    if (!accumulate) std::fill(crow, crow + N, 0.0f);
    for (int64_t k = k0; k < k1; ++k) {
      float amk = TransA ? a[k * lda + m] : a[m * lda + k];
      const float* brow = b + k * ldb;
#pragma omp simd
      for (int64_t n = 0; n < N; ++n) crow[n] += amk * brow[n];
    }
  }
}

#endif

template <bool TransA>
void tile_product(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                  int64_t ldc, bool accumulate, Cut cut = Cut::none, int64_t diag = 0) {
  for (int64_t m0 = 0; m0 < M; m0 += kMaxRows) {
    const int64_t rows = std::min<int64_t>(M - m0, kMaxRows);
    const BlockRange r = block_range(cut, diag, m0, rows, N, K);
    if (r.n_end == 0 || (accumulate && r.k_begin >= r.k_end)) continue;
    product_rows<TransA>(rows, r.n_end, r.k_begin, std::max(r.k_begin, r.k_end), TransA ? a + m0 : a + m0 * lda, lda,
                         b, ldb, c + m0 * ldc, ldc, accumulate);
  }
}

// ---------------------------------------------------------------------------------------------
// Row operations on score tiles.

#if defined(__AVX512F__)
// exp with about 1 ulp error (Cephes polynomial, Cody-Waite reduction). Inputs below -150 (and
// -inf) give exactly 0; NaN propagates.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-150.0f), x);
  x = _mm512_min_ps(_mm512_set1_ps(88.7f), x);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), f);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(f, f), _mm512_add_ps(f, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

// Lanes [0, n) of a 16-lane vector (none for n <= 0).
inline __mmask16 first_lanes(int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
}
#endif

// s[j] = exp(s[j] - shift) for j < n; returns the sum. shift is finite.
float exp_row(float* s, int64_t n, float shift) {
#if defined(__AVX512F__)
  __m512 sum = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
  for (int64_t j = 0; j < n; j += 16) {
    __mmask16 m = first_lanes(n - j);
    __m512 p = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), sh));
    _mm512_mask_storeu_ps(s + j, m, p);
    sum = _mm512_mask_add_ps(sum, m, sum, p);
  }
  return _mm512_reduce_add_ps(sum);
#else
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - shift));
  return sum;
#endif
}

// x[i] = exp(x[i]) for i < n (exp(-inf) = 0).
void exp_inplace(float* x, int64_t n) {
#if defined(__AVX512F__)
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = first_lanes(n - i);
    _mm512_mask_storeu_ps(x + i, m, exp_ps(_mm512_maskz_loadu_ps(m, x + i)));
  }
#else
  for (int64_t i = 0; i < n; ++i) x[i] = std::exp(x[i]);
#endif
}

// Where one query row stands within one key tile.
struct RowView {
  int64_t visible;       // leading keys of the tile this row may see (causal cut); the rest are -inf
  const float* mask;     // additive mask at (row, first key of the tile), or null
  int64_t mask_step;     // mask stride along keys (0 when broadcast)
};

// Turns raw dot products into scores: s = s * scale + mask, -inf past the causal cut. Returns the
// row max over the n keys.
float make_scores(float* s, int64_t n, float scale, const RowView& row) {
  const float* mask = row.mask;
  if (mask && row.mask_step != 1) {  // broadcast or strided mask: add it here, the vector pass skips it
    for (int64_t j = 0; j < n; ++j) s[j] = s[j] * scale + mask[j * row.mask_step];
    scale = 1.0f;
    mask = nullptr;
  }
  const int64_t visible = std::clamp<int64_t>(row.visible, 0, n);
#if defined(__AVX512F__)
  const __m512 neg_inf = _mm512_set1_ps(kNegInf), vscale = _mm512_set1_ps(scale);
  __m512 mx = neg_inf;
  for (int64_t j = 0; j < n; j += 16) {
    __mmask16 m = first_lanes(n - j);
    __m512 x = _mm512_maskz_loadu_ps(m, s + j);
    if (scale != 1.0f) x = _mm512_mul_ps(x, vscale);
    if (mask) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, mask + j));
    x = _mm512_mask_blend_ps(first_lanes(visible - j), neg_inf, x);
    _mm512_mask_storeu_ps(s + j, m, x);
    mx = _mm512_mask_max_ps(mx, m, mx, x);
  }
  return _mm512_reduce_max_ps(mx);
#else
  float mx = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    float x = s[j] * scale + (mask ? mask[j] : 0.0f);
    s[j] = j < visible ? x : kNegInf;
    mx = std::max(mx, s[j]);
  }
  return mx;
#endif
}

// ---------------------------------------------------------------------------------------------
// Geometry shared by forward and backward.

struct Geometry {
  const AttentionArgs& a;
  int64_t group;        // query heads per kv head
  int64_t causal_shift;  // query i sees keys j <= i + causal_shift (when causal)
  int64_t q_tiles, k_tiles;

  explicit Geometry(const AttentionArgs& args)
      : a(args),
        group(args.q_heads / std::max<int64_t>(args.kv_heads, 1)),
        causal_shift(args.kv_len - args.q_len),
        q_tiles(ceil_div(args.q_len, kQueryTile)),
        k_tiles(ceil_div(args.kv_len, kKeyTile)) {}

  // Keys [0, key_end) matter to the query rows [q0, q0 + nq).
  int64_t key_end(int64_t q0, int64_t nq) const {
    if (!a.causal) return a.kv_len;
    return std::clamp<int64_t>(q0 + nq + causal_shift, 0, a.kv_len);
  }
  // Row r of the score tile of (q0, k0) sees its columns c < r + diag.
  int64_t diag(int64_t q0, int64_t k0) const { return a.causal ? q0 + causal_shift - k0 + 1 : int64_t(1) << 40; }
  // The first query row that sees key k0.
  int64_t query_begin(int64_t k0) const { return a.causal ? std::clamp<int64_t>(k0 - causal_shift, 0, a.q_len) : 0; }

  RowView row(int64_t b, int64_t h, int64_t qi, int64_t k0, int64_t nk) const {
    RowView r;
    r.visible = a.causal ? std::min<int64_t>(qi + causal_shift - k0 + 1, nk) : nk;
    r.mask = a.mask ? a.mask + b * a.mask_stride[0] + h * a.mask_stride[1] + qi * a.mask_stride[2] +
                          k0 * a.mask_stride[3]
                    : nullptr;
    r.mask_step = a.mask_stride[3];
    return r;
  }
};

// Key tiles of one (batch, kv head) transposed into contiguous D x Bc panels, so that the score
// product reads them as its B operand: panel t holds keys [t*Bc, t*Bc + Bc) as columns.
void pack_transposed(const float* x, int64_t row_stride, int64_t rows, int64_t dim, float* panels) {
  for (int64_t t0 = 0; t0 < rows; t0 += kKeyTile) {
    float* panel = panels + (t0 / kKeyTile) * dim * kKeyTile;
    int64_t n = std::min(kKeyTile, rows - t0);
    for (int64_t j = 0; j < n; ++j) {
      const float* src = x + (t0 + j) * row_stride;
      for (int64_t d = 0; d < dim; ++d) panel[d * kKeyTile + j] = src[d];
    }
    // the columns past the last key are read by the products (and ignored): keep them finite
    for (int64_t d = 0; d < dim && n < kKeyTile; ++d) std::fill(panel + d * kKeyTile + n, panel + (d + 1) * kKeyTile, 0.0f);
  }
}

// Panels of every (batch, kv head): [B, Hkv, k_tiles, D, Bc], into `panels` (resized; a buffer kept
// across calls saves an allocation and a memset of the whole cache per call while decoding).
void pack_all_transposed(const Geometry& g, const float* x, const int64_t* stride, std::vector<float>& panels) {
  const AttentionArgs& a = g.a;
  int64_t per_head = g.k_tiles * a.head_dim * kKeyTile;
  panels.resize(static_cast<size_t>(a.batch * a.kv_heads * per_head));
  int64_t heads = a.batch * a.kv_heads;
  auto pack_head = [&](int64_t bh) {
    int64_t b = bh / a.kv_heads, h = bh % a.kv_heads;
    pack_transposed(x + b * stride[0] + h * stride[1], stride[2], a.kv_len, a.head_dim,
                    panels.data() + bh * per_head);
  };
  if (heads * a.kv_len * a.head_dim <= (1 << 17)) {  // no parallel region at all: even a false `if` costs
    for (int64_t bh = 0; bh < heads; ++bh) pack_head(bh);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < heads; ++bh) pack_head(bh);
}

// ---------------------------------------------------------------------------------------------
// Forward

struct ForwardScratch {
  int64_t dim;
  std::vector<float> q, scores, acc, row_max, row_sum, shift, alpha;
  explicit ForwardScratch(int64_t d)
      : dim(d),
        q(static_cast<size_t>(kQueryTile * dim)),
        scores(static_cast<size_t>(kQueryTile * kKeyTile)),
        acc(static_cast<size_t>(kQueryTile * dim)),
        row_max(static_cast<size_t>(kQueryTile)),
        row_sum(static_cast<size_t>(kQueryTile)),
        shift(static_cast<size_t>(kQueryTile)),
        alpha(static_cast<size_t>(kQueryTile)) {}
};

// The calling thread's scratch, kept across calls (decoding calls attention once per layer and token).
ForwardScratch& forward_scratch(int64_t dim) {
  thread_local std::unique_ptr<ForwardScratch> scratch;
  if (!scratch || scratch->dim != dim) scratch = std::make_unique<ForwardScratch>(dim);
  return *scratch;
}

// One query tile of one head against all the keys it sees.
void forward_tile(const Geometry& g, int64_t b, int64_t h, int64_t q0, const float* q, const float* k_panels,
                  const float* v, float* out, float* lse, ForwardScratch& s) {
  const AttentionArgs& a = g.a;
  const int64_t D = a.head_dim, hk = h / g.group;
  const int64_t nq = std::min(kQueryTile, a.q_len - q0);
  // The scale is folded into this copy of the query rows, so scores come out of the product scaled.
  const float* qrows = q + b * a.q_stride[0] + h * a.q_stride[1] + q0 * a.q_stride[2];
  for (int64_t i = 0; i < nq; ++i)
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) s.q[size_t(i * D + d)] = qrows[i * a.q_stride[2] + d] * a.scale;
  std::fill(s.acc.begin(), s.acc.begin() + nq * D, 0.0f);
  std::fill(s.row_max.begin(), s.row_max.end(), kNegInf);
  std::fill(s.row_sum.begin(), s.row_sum.end(), 0.0f);

  const float* vhead = v + b * a.v_stride[0] + hk * a.v_stride[1];
  const float* panels = k_panels + (b * a.kv_heads + hk) * g.k_tiles * D * kKeyTile;
  const int64_t kend = g.key_end(q0, nq);
  for (int64_t k0 = 0; k0 < kend; k0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, kend - k0);
    float* S = s.scores.data();
    const int64_t diag = g.diag(q0, k0);
    tile_product<false>(nq, nk, D, s.q.data(), D, panels + (k0 / kKeyTile) * D * kKeyTile, kKeyTile, S, kKeyTile,
                        false, Cut::columns, diag);
    // Online softmax: new running max, the factor alpha that rescales what was summed so far, then
    // P = exp(S - max). A row that has seen nothing yet keeps max -inf and shifts by 0 instead,
    // which leaves its P (and alpha) at exactly 0.
    for (int64_t i = 0; i < nq; ++i) {
      float mx = make_scores(S + i * kKeyTile, nk, 1.0f, g.row(b, h, q0 + i, k0, nk));
      float m_new = std::max(s.row_max[size_t(i)], mx);
      s.shift[size_t(i)] = m_new == kNegInf ? 0.0f : m_new;
      s.alpha[size_t(i)] = s.row_max[size_t(i)] - s.shift[size_t(i)];
      s.row_max[size_t(i)] = m_new;
    }
    exp_inplace(s.alpha.data(), nq);
    for (int64_t i = 0; i < nq; ++i) {
      float alpha = s.alpha[size_t(i)];
      s.row_sum[size_t(i)] = s.row_sum[size_t(i)] * alpha + exp_row(S + i * kKeyTile, nk, s.shift[size_t(i)]);
      if (alpha != 1.0f) {
        float* arow = s.acc.data() + i * D;
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) arow[d] *= alpha;
      }
    }
    tile_product<false>(nq, D, nk, S, kKeyTile, vhead + k0 * a.v_stride[2], a.v_stride[2], s.acc.data(), D, true,
                        Cut::k_end, diag);
  }

  float* orows = out + b * a.o_stride[0] + h * a.o_stride[1] + q0 * a.o_stride[2];
  float* lrow = lse + (b * a.q_heads + h) * a.q_len + q0;
  for (int64_t i = 0; i < nq; ++i) {
    float l = s.row_sum[size_t(i)];
    float inv = l > 0.0f ? 1.0f / l : 0.0f;  // a row that sees no key gives 0
    const float* arow = s.acc.data() + i * D;
    float* orow = orows + i * a.o_stride[2];
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) orow[d] = arow[d] * inv;
    lrow[i] = l > 0.0f ? s.row_max[size_t(i)] + std::log(l) : kNegInf;
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

struct BackwardScratch {
  std::vector<float> p, dp, k_panel, v_panel, dk, dv;
  explicit BackwardScratch(int64_t dim)
      : p(static_cast<size_t>(kQueryTile * kKeyTile)),
        dp(static_cast<size_t>(kQueryTile * kKeyTile)),
        k_panel(static_cast<size_t>(dim * kKeyTile)),
        v_panel(static_cast<size_t>(dim * kKeyTile)),
        dk(static_cast<size_t>(kKeyTile * dim)),
        dv(static_cast<size_t>(kKeyTile * dim)) {}
};

struct BackwardInputs {
  const float *q, *k, *v, *dout, *lse, *delta;
  float *dq, *dk, *dv;
};

// Recomputes P (into s.p) and dS = P * (dP - delta) * scale (into s.dp) for one tile pair; both
// are nq x nk with row stride Bc. Rows that see no key (lse = -inf) get zeros.
void probabilities_and_score_grads(const Geometry& g, const BackwardInputs& in, int64_t b, int64_t h, int64_t q0,
                                   int64_t nq, int64_t k0, int64_t nk, const float* k_panel, const float* v_panel,
                                   BackwardScratch& s) {
  const AttentionArgs& a = g.a;
  const int64_t D = a.head_dim;
  const float* qrows = in.q + b * a.q_stride[0] + h * a.q_stride[1] + q0 * a.q_stride[2];
  const float* dorows = in.dout + b * a.o_stride[0] + h * a.o_stride[1] + q0 * a.o_stride[2];
  const int64_t row0 = (b * a.q_heads + h) * a.q_len + q0;
  const int64_t diag = g.diag(q0, k0);
  tile_product<false>(nq, nk, D, qrows, a.q_stride[2], k_panel, kKeyTile, s.p.data(), kKeyTile, false, Cut::columns,
                      diag);
  tile_product<false>(nq, nk, D, dorows, a.o_stride[2], v_panel, kKeyTile, s.dp.data(), kKeyTile, false,
                      Cut::columns, diag);
  for (int64_t i = 0; i < nq; ++i) {
    float* prow = s.p.data() + i * kKeyTile;
    float* dsrow = s.dp.data() + i * kKeyTile;
    float lse = in.lse[row0 + i];
    if (lse == kNegInf) {
      std::fill(prow, prow + nk, 0.0f);
      std::fill(dsrow, dsrow + nk, 0.0f);
      continue;
    }
    make_scores(prow, nk, a.scale, g.row(b, h, q0 + i, k0, nk));
    exp_row(prow, nk, lse);
    // Past the causal cut dP was never computed; P is 0 there and so is dS.
    const int64_t visible = std::clamp<int64_t>(i + diag, 0, nk);
    float delta = in.delta[row0 + i], scale = a.scale;
#pragma omp simd
    for (int64_t j = 0; j < visible; ++j) dsrow[j] = prow[j] * (dsrow[j] - delta) * scale;
    std::fill(dsrow + visible, dsrow + nk, 0.0f);
  }
}

// dK and dV of one key tile of one (batch, kv head), summed over the query heads of its group and
// every query tile that sees it. With dq set, also adds this tile's share to dq (the caller makes
// sure no other thread writes the same dq rows).
void backward_key_tile(const Geometry& g, const BackwardInputs& in, int64_t b, int64_t hk, int64_t k0, bool with_dq,
                       BackwardScratch& s) {
  const AttentionArgs& a = g.a;
  const int64_t D = a.head_dim, nk = std::min(kKeyTile, a.kv_len - k0);
  const float* krows = in.k + b * a.k_stride[0] + hk * a.k_stride[1] + k0 * a.k_stride[2];
  const float* vrows = in.v + b * a.v_stride[0] + hk * a.v_stride[1] + k0 * a.v_stride[2];
  pack_transposed(krows, a.k_stride[2], nk, D, s.k_panel.data());
  pack_transposed(vrows, a.v_stride[2], nk, D, s.v_panel.data());
  std::fill(s.dk.begin(), s.dk.end(), 0.0f);
  std::fill(s.dv.begin(), s.dv.end(), 0.0f);
  const int64_t first_q = g.query_begin(k0) / kQueryTile * kQueryTile;
  for (int64_t h = hk * g.group; h < (hk + 1) * g.group; ++h) {
    const float* qhead = in.q + b * a.q_stride[0] + h * a.q_stride[1];
    const float* dohead = in.dout + b * a.o_stride[0] + h * a.o_stride[1];
    for (int64_t q0 = first_q; q0 < a.q_len; q0 += kQueryTile) {
      const int64_t nq = std::min(kQueryTile, a.q_len - q0);
      probabilities_and_score_grads(g, in, b, h, q0, nq, k0, nk, s.k_panel.data(), s.v_panel.data(), s);
      // dV += P^T dO, dK += dS^T Q: the score tiles are read transposed in place.
      const int64_t diag = g.diag(q0, k0);
      tile_product<true>(nk, D, nq, s.p.data(), kKeyTile, dohead + q0 * a.o_stride[2], a.o_stride[2], s.dv.data(), D,
                         true, Cut::k_begin, diag);
      tile_product<true>(nk, D, nq, s.dp.data(), kKeyTile, qhead + q0 * a.q_stride[2], a.q_stride[2], s.dk.data(), D,
                         true, Cut::k_begin, diag);
      if (with_dq) {
        float* dqrows = in.dq + ((b * a.q_heads + h) * a.q_len + q0) * D;
        tile_product<false>(nq, D, nk, s.dp.data(), kKeyTile, krows, a.k_stride[2], dqrows, D, true, Cut::k_end,
                            diag);
      }
    }
  }
  const int64_t row0 = ((b * a.kv_heads + hk) * a.kv_len + k0) * D;
  std::memcpy(in.dk + row0, s.dk.data(), sizeof(float) * size_t(nk * D));
  std::memcpy(in.dv + row0, s.dv.data(), sizeof(float) * size_t(nk * D));
}

// dq of one query tile of one head, from every key tile it sees (panels packed beforehand).
void backward_query_tile(const Geometry& g, const BackwardInputs& in, int64_t b, int64_t h, int64_t q0,
                         const float* k_panels, const float* v_panels, BackwardScratch& s) {
  const AttentionArgs& a = g.a;
  const int64_t D = a.head_dim, hk = h / g.group, nq = std::min(kQueryTile, a.q_len - q0);
  const int64_t head_panels = (b * a.kv_heads + hk) * g.k_tiles * D * kKeyTile;
  const float* khead = in.k + b * a.k_stride[0] + hk * a.k_stride[1];
  float* dqrows = in.dq + ((b * a.q_heads + h) * a.q_len + q0) * D;
  std::fill(dqrows, dqrows + nq * D, 0.0f);
  const int64_t kend = g.key_end(q0, nq);
  for (int64_t k0 = 0; k0 < kend; k0 += kKeyTile) {
    const int64_t nk = std::min(kKeyTile, kend - k0);
    const int64_t panel = head_panels + (k0 / kKeyTile) * D * kKeyTile;
    probabilities_and_score_grads(g, in, b, h, q0, nq, k0, nk, k_panels + panel, v_panels + panel, s);
    tile_product<false>(nq, D, nk, s.dp.data(), kKeyTile, khead + k0 * a.k_stride[2], a.k_stride[2], dqrows, D, true,
                        Cut::k_end, g.diag(q0, k0));
  }
}

// delta_i = rowsum(dO_i * O_i), [B, Hq, Tq].
std::vector<float> output_grad_dot(const AttentionArgs& a, const float* out, const float* dout) {
  std::vector<float> delta(static_cast<size_t>(a.batch * a.q_heads * a.q_len));
  int64_t rows = int64_t(delta.size());
#pragma omp parallel for schedule(static) if (rows * a.head_dim > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = r % a.q_len, bh = r / a.q_len, h = bh % a.q_heads, b = bh / a.q_heads;
    int64_t off = b * a.o_stride[0] + h * a.o_stride[1] + t * a.o_stride[2];
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t d = 0; d < a.head_dim; ++d) acc += out[off + d] * dout[off + d];
    delta[size_t(r)] = acc;
  }
  return delta;
}

// Decoding: one query row per (batch, head), which sees every key (causal alignment puts it last).
// The keys and values are read in place, row by row: packing them into panels, as the tiled kernel
// does, would copy the whole cache per layer and token for one row of products. The scale is
// folded into the query, as forward_tile does.
void decode_row(const AttentionArgs& a, int64_t b, int64_t h, const float* q, const float* k, const float* v,
                float* out, float* lse, std::vector<float>& scratch) {
  const int64_t D = a.head_dim, n = a.kv_len, hk = h / (a.q_heads / a.kv_heads);
  scratch.resize(static_cast<size_t>(n + 2 * D));
  float* s = scratch.data();
  float* qs = s + n;
  float* acc = qs + D;
  const float* qrow = q + b * a.q_stride[0] + h * a.q_stride[1];
  for (int64_t d = 0; d < D; ++d) qs[d] = qrow[d] * a.scale;
  const float* kh = k + b * a.k_stride[0] + hk * a.k_stride[1];
  const float* vh = v + b * a.v_stride[0] + hk * a.v_stride[1];
  const float* mask = a.mask ? a.mask + b * a.mask_stride[0] + h * a.mask_stride[1] : nullptr;
  float mx = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    const float* krow = kh + j * a.k_stride[2];
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int64_t d = 0; d < D; ++d) dot += qs[d] * krow[d];
    s[j] = mask ? dot + mask[j * a.mask_stride[3]] : dot;
    mx = std::max(mx, s[j]);
  }
  float* orow = out + b * a.o_stride[0] + h * a.o_stride[1];
  float* lrow = lse + b * a.q_heads + h;
  if (mx == kNegInf) {  // every key masked: 0, as forward_tile gives
    std::fill(orow, orow + D, 0.0f);
    *lrow = kNegInf;
    return;
  }
  const float sum = exp_row(s, n, mx);
  std::fill(acc, acc + D, 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    const float* vrow = vh + j * a.v_stride[2];
    const float p = s[j];
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) acc[d] += p * vrow[d];
  }
  const float inv = 1.0f / sum;
  for (int64_t d = 0; d < D; ++d) orow[d] = acc[d] * inv;
  *lrow = mx + std::log(sum);
}

// Multiply-adds below which a decode attention stays on the calling thread.
constexpr int64_t kDecodeParallelWork = int64_t(1) << 13;

void decode_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out, float* lse) {
  const int64_t rows = a.batch * a.q_heads;
  auto run_rows = [&](int64_t lo, int64_t hi) {
    thread_local std::vector<float> scratch;
    for (int64_t r = lo; r < hi; ++r) decode_row(a, r / a.q_heads, r % a.q_heads, q, k, v, out, lse, scratch);
  };
  // Tens of microseconds per layer while decoding, less than an OpenMP fork-join costs under
  // OMP_WAIT_POLICY=PASSIVE; SpinPool hands the heads over in well under a microsecond (small
  // decode: 1165 tok/s with every head on one thread, 1267 split).
  if (rows * a.kv_len * a.head_dim < kDecodeParallelWork) {
    run_rows(0, rows);
    return;
  }
  cpu::spin_parallel_ranges(rows, 1, run_rows);
}

// One pass over whole kv heads (no two threads share dq, dk or dv rows) is cheapest, but it only
// keeps every thread busy when there are enough heads; otherwise dk/dv go by key tile and dq by
// query tile in a second pass that recomputes P.
bool whole_heads_balance(int64_t units, int threads) {
  return threads <= 1 || units % threads == 0 || units >= 4 * int64_t(threads);
}

void check_args(const AttentionArgs& a) {
  LD_ASSERT(a.batch >= 0 && a.q_heads >= 0 && a.kv_heads >= 0 && a.q_len >= 0 && a.kv_len >= 0 && a.head_dim >= 0,
            "attention: negative size");
  LD_ASSERT(a.kv_heads > 0 ? a.q_heads % a.kv_heads == 0 : a.q_heads == 0,
            "attention: q_heads=", a.q_heads, " is not a multiple of kv_heads=", a.kv_heads);
}

}  // namespace

void CpuBackend::attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                                   float* lse) {
  check_args(a);
  const Geometry g(a);
  const int64_t items = a.batch * a.q_heads * g.q_tiles;
  if (items == 0) return;
  if (a.q_len == 1 && a.kv_len > 0) {
    decode_forward(a, q, k, v, out, lse);
    return;
  }
  thread_local std::vector<float> k_panel_buffer;  // this thread's: the workers get a plain pointer
  pack_all_transposed(g, k, a.k_stride, k_panel_buffer);
  const float* k_panels = k_panel_buffer.data();
  // Decoding (one query row per head) is a few microseconds of work: a fork-join would cost more.
  const bool parallel = items > 1 && items * std::min(kQueryTile, a.q_len) * a.kv_len * a.head_dim > (int64_t(1) << 17);
#pragma omp parallel if (parallel)
  {
    ForwardScratch& scratch = forward_scratch(a.head_dim);
    // Heaviest tiles first (the last query tiles see the most keys when causal).
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      int64_t qt = g.q_tiles - 1 - it / (a.batch * a.q_heads), bh = it % (a.batch * a.q_heads);
      forward_tile(g, bh / a.q_heads, bh % a.q_heads, qt * kQueryTile, q, k_panels, v, out, lse, scratch);
    }
  }
}

void CpuBackend::attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v,
                                    const float* out, const float* dout, const float* lse, float* dq, float* dk,
                                    float* dv) {
  check_args(a);
  const Geometry g(a);
  const int64_t D = a.head_dim;
  const int64_t q_size = a.batch * a.q_heads * a.q_len * D, kv_size = a.batch * a.kv_heads * a.kv_len * D;
  if (a.batch * a.q_heads * a.q_len * a.kv_len == 0) {
    std::fill(dq, dq + q_size, 0.0f);
    std::fill(dk, dk + kv_size, 0.0f);
    std::fill(dv, dv + kv_size, 0.0f);
    return;
  }
  std::vector<float> delta = output_grad_dot(a, out, dout);
  const BackwardInputs in{q, k, v, dout, lse, delta.data(), dq, dk, dv};
  const int64_t units = a.batch * a.kv_heads;
  const int threads = omp_get_max_threads();

  // Every key tile writes its dk and dv rows whole; dq is accumulated over key tiles.
  if (whole_heads_balance(units, threads)) {
    std::fill(dq, dq + q_size, 0.0f);
#pragma omp parallel if (units > 1)
    {
      BackwardScratch scratch(D);
#pragma omp for schedule(dynamic, 1)
      for (int64_t u = 0; u < units; ++u)
        for (int64_t kt = 0; kt < g.k_tiles; ++kt)
          backward_key_tile(g, in, u / a.kv_heads, u % a.kv_heads, kt * kKeyTile, true, scratch);
    }
    return;
  }

  const int64_t key_items = units * g.k_tiles;
#pragma omp parallel if (key_items > 1)
  {
    BackwardScratch scratch(D);
    // Key tiles that the most query tiles see come first (the first ones when causal).
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < key_items; ++it)
      backward_key_tile(g, in, (it % units) / a.kv_heads, (it % units) % a.kv_heads, (it / units) * kKeyTile, false,
                        scratch);
  }
  std::vector<float> k_panels, v_panels;
  pack_all_transposed(g, k, a.k_stride, k_panels);
  pack_all_transposed(g, v, a.v_stride, v_panels);
  const int64_t query_items = a.batch * a.q_heads * g.q_tiles;
#pragma omp parallel if (query_items > 1)
  {
    BackwardScratch scratch(D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < query_items; ++it) {
      int64_t qt = g.q_tiles - 1 - it / (a.batch * a.q_heads), bh = it % (a.batch * a.q_heads);
      backward_query_tile(g, in, bh / a.q_heads, bh % a.q_heads, qt * kQueryTile, k_panels.data(), v_panels.data(),
                          scratch);
    }
  }
}

}  // namespace ld
