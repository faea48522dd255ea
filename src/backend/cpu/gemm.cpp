// Matrix products through oneDNN's sgemm: it picks AVX-512 kernels by CPUID whatever
// OPENBLAS_CORETYPE says, and measured faster than OpenBLAS on our shapes (docs/architecture.md).
#include <dnnl.h>

#include "backend/cpu/cpu_backend.hpp"
#include "core/error.hpp"

namespace ld {

namespace {
void sgemm_one(const GemmArgs& g, const float* a, const float* b, float* c) {
  dnnl_status_t st = dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k, g.alpha, a, g.lda, b,
                                g.ldb, g.beta, c, g.ldc);
  LD_ASSERT(st == dnnl_success, "dnnl_sgemm failed with status ", int(st), " for m=", g.m, " n=", g.n, " k=", g.k);
}
}  // namespace

void CpuBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {
    for (int64_t bi = 0; bi < g.batch; ++bi)
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.n; ++j) {
          float& c = g.c[bi * g.stride_c + i * g.ldc + j];
          c = g.beta == 0.0f ? 0.0f : g.beta * c;
        }
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

}  // namespace ld
