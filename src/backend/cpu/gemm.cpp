// Matrix products through oneDNN, which picks AVX-512 kernels by CPUID whatever OPENBLAS_CORETYPE
// says and measured faster than OpenBLAS on our shapes (docs/architecture.md "GEMM"). Two entry
// points, chosen by measurement on transformer shapes (2 threads, GFLOP/s):
// - dnnl_sgemm for most products;
// - the matmul primitive (brgemm kernels) where sgemm's transposed paths are slow:
//   x @ W^T with K >= N (a Linear forward with a wide input): 2048x256x1024 477 vs 362,
//   1024x768x3072 494 vs 399;
//   dY^T @ X with min(M, N) <= 256 (a weight gradient with a narrow side): 8192x256x2048 422 vs 329,
//   1024x256x2048 466 vs 398 (wider ones stay on sgemm: 50257x768x1024 410 vs 473).
//   Primitives are created once per shape and cached.
//   Thin weight gradients, min(M, N) <= 16 (a LoRA factor's dA = dH^T X, dB = dY^T H at rank 8 or
//   16), go back to sgemm, faster there (microseconds, best of 60, 2 threads, K = rows): 1152x8x2048
//   411 vs 536, 384x8x2048 107 vs 161, 8x384x2048 64 vs 74, 768x8x2048 273 vs 347, 1152x16x2048 410
//   vs 518; except when dY's row stride is a multiple of 4 KiB (M = 1024, 2048, 3072, 4096: sgemm's
//   strided reads alias in the cache): 3072x8x1024 946 vs 827, 2048x8x2048 1367 vs 1088.
// bf16/fp16 products (GemmArgs::precision, set under ops::AutocastScope) go to gemm_half.cpp.
#include <dnnl.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/gemm_half.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/small_m_gemm.hpp"
#include "backend/gemm_epilogue.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace ld {

namespace {

void sgemm_one(const GemmArgs& g, const float* a, const float* b, float* c) {
  dnnl_status_t st = dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k, g.alpha, a, g.lda, b,
                                g.ldb, g.beta, c, g.ldc);
  LD_ASSERT(st == dnnl_success, "dnnl_sgemm failed with status ", int(st), " for m=", g.m, " n=", g.n, " k=", g.k);
}

// A LoRA factor's gradient (see the header comment): sgemm, unless the rows of A^T alias.
bool is_thin_sgemm_gradient(const GemmArgs& g) {
  constexpr int64_t kFloatsPer4KiB = 1024;
  return std::min(g.m, g.n) <= 16 && g.lda % kFloatsPer4KiB != 0;
}

bool prefers_matmul_primitive(const GemmArgs& g) {
  if (g.batch != 1 || g.alpha != 1.0f || (g.beta != 0.0f && g.beta != 1.0f) || g.k < 64) return false;
  bool wide_input_forward = !g.trans_a && g.trans_b && g.k >= g.n;
  bool narrow_weight_gradient = g.trans_a && !g.trans_b && std::min(g.m, g.n) <= 256 && !is_thin_sgemm_gradient(g);
  return wide_input_forward || narrow_weight_gradient;
}

// A product over a few rows (decoding): X[m, k] W^T (Linear) or X W (Conv1D), W streamed once.
// Measured on one core against sgemm (microseconds, GPT-2 124M shapes): X W^T 2304x768 m=1 135 vs
// 239, m=4 308 vs 447, m=8 618 vs 573, 8192x768 m=8 3661 vs 4331; X W 768x2304 m=1 138 vs 200,
// m=2 319 vs 421, but m=3 538 vs 388 and m=8 1572 vs 355 (sgemm's packed N,N kernel wins there).
bool is_small_m_product(int64_t m, bool w_kn) { return m <= (w_kn ? cpu::kMaxRowsKn : cpu::kSmallMMax); }

bool takes_small_m_kernel(const GemmArgs& g) {
  return g.batch == 1 && !g.trans_a && is_small_m_product(g.m, !g.trans_b) && g.alpha == 1.0f &&
         (g.beta == 0.0f || g.beta == 1.0f);
}

class MatmulCache {
 public:
  void run(const GemmArgs& g) {
    using dt = dnnl::memory::data_type;
    // transposed operands are described by strides, not copied
    dnnl::memory::desc a_md({g.m, g.k}, dt::f32, g.trans_a ? dnnl::memory::dims{1, g.lda} : dnnl::memory::dims{g.lda, 1});
    dnnl::memory::desc b_md({g.k, g.n}, dt::f32, g.trans_b ? dnnl::memory::dims{1, g.ldb} : dnnl::memory::dims{g.ldb, 1});
    dnnl::memory::desc c_md({g.m, g.n}, dt::f32, dnnl::memory::dims{g.ldc, 1});
    Key key{g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.trans_a, g.trans_b, g.beta != 0.0f};
    std::shared_ptr<dnnl::matmul> prim;
    {
      std::lock_guard lock(mutex_);
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        dnnl::primitive_attr attr;
        if (g.beta != 0.0f) {
          dnnl::post_ops ops;
          ops.append_sum(1.0f);  // C = A B^T + C (a Linear's bias pre-filled into C)
          attr.set_post_ops(ops);
        }
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
        it = cache_.emplace(key, std::make_shared<dnnl::matmul>(pd)).first;
      }
      prim = it->second;
    }
    dnnl::memory a_mem(a_md, engine_, const_cast<float*>(g.a));
    dnnl::memory b_mem(b_md, engine_, const_cast<float*>(g.b));
    dnnl::memory c_mem(c_md, engine_, g.c);
    prim->execute(stream_, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    stream_.wait();
  }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool>;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::mutex mutex_;
  std::map<Key, std::shared_ptr<dnnl::matmul>> cache_;
};

MatmulCache& matmul_cache() {
  static MatmulCache cache;
  return cache;
}

// An f32 product with m, n, k > 0: the entry point measured fastest for its shape.
void gemm_f32(const GemmArgs& g) {
  if (takes_small_m_kernel(g)) {
    cpu::small_m_gemm(g.m, g.n, g.k, g.a, g.lda, g.b, g.ldb, /*w_kn=*/!g.trans_b, g.c, g.ldc, g.beta != 0.0f);
    return;
  }
  if (prefers_matmul_primitive(g)) {
    matmul_cache().run(g);
    return;
  }
  // oneDNN parallelises each product internally; many small products (attention heads) go one per
  // thread instead, which keeps both cores busy without oversubscribing.
  int64_t flops_each = g.m * g.n * g.k;
  if (g.batch > 1 && flops_each < (int64_t(1) << 21)) {
#pragma omp parallel for schedule(static)
    for (int64_t bi = 0; bi < g.batch; ++bi)
      sgemm_one(g, g.a + bi * g.stride_a, g.b + bi * g.stride_b, g.c + bi * g.stride_c);
    return;
  }
  for (int64_t bi = 0; bi < g.batch; ++bi)
    sgemm_one(g, g.a + bi * g.stride_a, g.b + bi * g.stride_b, g.c + bi * g.stride_c);
}

}  // namespace

namespace {

// C = beta C (+ bias on every row): a product with k = 0, or the bias written before the product
// adds onto it (beta 1).
void scale_and_add_bias(const GemmArgs& g) {
  cpu::parallel_chunks(g.batch * g.m, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      float* row = g.c + (r / g.m) * g.stride_c + (r % g.m) * g.ldc;
      for (int64_t j = 0; j < g.n; ++j) {
        const float kept = g.beta == 0.0f ? 0.0f : g.beta * row[j];
        row[j] = g.bias != nullptr ? kept + g.bias[j] : kept;
      }
    }
  }, (int64_t(1) << 15) / std::max<int64_t>(g.n, 1));
}

}  // namespace

void CpuBackend::gemm(const GemmArgs& args) {
  if (args.m == 0 || args.n == 0) return;
  if (has_epilogue(args)) {
    gemm_then_epilogue(*this, args);
    return;
  }
  if (args.k == 0 || args.bias != nullptr) scale_and_add_bias(args);
  if (args.k == 0) return;
  LD_ASSERT(args.precision != ComputePrecision::f32 || (args.a_half == nullptr && args.b_half == nullptr),
            "gemm: a 16-bit operand needs a bf16 or fp16 product");
  GemmArgs g = args;
  if (g.bias != nullptr) g.beta = 1.0f, g.bias = nullptr;
  if (g.precision != ComputePrecision::f32) {
    cpu::gemm_half(g, gemm_f32);  // autocast: bf16/fp16 operands, f32 accumulation (gemm_half.cpp)
    return;
  }
  gemm_f32(g);
}

// Few rows: the small-M kernel widens W in registers. More rows (a prefill, or X W from 3 rows on,
// as for f32): W is widened to f32 a block at a time and multiplied by sgemm, so W is read once.
void CpuBackend::linear_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, bool w_kn, float* y,
                             bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) std::fill(y, y + m * n, 0.0f);
    return;
  }
  if (is_small_m_product(m, w_kn)) {
    cpu::small_m_gemm(m, n, k, x, k, w, w_kn ? n : k, w_kn, y, n, accumulate);
    return;
  }
  // Blocks of output features, widened into an f32 block that stays in L2: rows of W [n, k] into
  // [cols, k], columns of W [k, n] into [k, cols] (both read and written contiguously).
  const int64_t cols_per_block = std::max<int64_t>(16, (int64_t(1) << 18) / k);
  std::vector<float> wf(static_cast<size_t>(std::min(n, cols_per_block) * k));
  for (int64_t j0 = 0; j0 < n; j0 += cols_per_block) {
    const int64_t cols = std::min(cols_per_block, n - j0);
    if (w_kn) {
      for (int64_t i = 0; i < k; ++i)
        for (int64_t c = 0; c < cols; ++c) wf[static_cast<size_t>(i * cols + c)] = bf16_to_f32(w[i * n + j0 + c]);
    } else {
      const uint16_t* src = w + j0 * k;
      for (int64_t i = 0; i < cols * k; ++i) wf[static_cast<size_t>(i)] = bf16_to_f32(src[i]);
    }
    GemmArgs g;
    g.trans_b = !w_kn;
    g.m = m, g.n = cols, g.k = k;
    g.beta = accumulate ? 1.0f : 0.0f;
    g.a = x, g.lda = k, g.b = wf.data(), g.ldb = w_kn ? cols : k, g.c = y + j0, g.ldc = n;
    sgemm_one(g, g.a, g.b, g.c);
  }
}

}  // namespace ld
