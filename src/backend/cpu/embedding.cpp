// Embedding lookup (gather rows of a table by id) and its backward (scatter-add rows by id).
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/cpu_backend.hpp"
#include "core/error.hpp"

namespace ld {

namespace {

// Below this many floats moved, thread start-up costs more than the copy.
constexpr int64_t kParallelMinElements = 1 << 14;
// A thread's column slice of the gradient table is a multiple of one cache line wide, so that when
// rows are line-aligned (dim a multiple of 16, as in real models) two threads never write the same
// line, and the inner loop runs over whole vectors.
constexpr int64_t kColumnsPerLine = 64 / sizeof(float);

template <typename Id>
void gather_rows(int64_t n, const Id* ids, int64_t dim, const float* table, float* out) {
  size_t row_bytes = size_t(dim) * sizeof(float);
#pragma omp parallel for schedule(static) if (n * dim > kParallelMinElements)
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * dim, table + int64_t(ids[i]) * dim, row_bytes);
}

// Each thread owns a slice of the columns and walks all ids in order, so every element of dtable
// is summed by one thread in the order of the ids: no races, no atomics, and the result does not
// depend on the thread count. (Splitting by vocab rows would also be race-free but is unbalanced
// for skewed token frequencies.)
template <typename Id>
void scatter_add_rows_by_id(int64_t n, const Id* ids, int64_t dim, const float* dy, float* dtable) {
  int64_t lines = (dim + kColumnsPerLine - 1) / kColumnsPerLine;
  int threads = n * dim > kParallelMinElements ? int(std::min<int64_t>(omp_get_max_threads(), lines)) : 1;
#pragma omp parallel num_threads(std::max(threads, 1))
  {
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    int64_t lines_per_thread = (lines + nt - 1) / nt;
    int64_t begin = std::min(dim, t * lines_per_thread * kColumnsPerLine);
    int64_t end = std::min(dim, begin + lines_per_thread * kColumnsPerLine);
    for (int64_t i = 0; i < n; ++i) {
      float* dst = dtable + int64_t(ids[i]) * dim;
      const float* src = dy + i * dim;
#pragma omp simd
      for (int64_t c = begin; c < end; ++c) dst[c] += src[c];
    }
  }
}

template <typename F>
void dispatch_ids(DType id_dtype, const void* ids, F&& f) {
  if (id_dtype == DType::i64) return f(static_cast<const int64_t*>(ids));
  LD_ASSERT(id_dtype == DType::i32, "embedding kernel: ids must be i32 or i64, got ", dtype_name(id_dtype));
  f(static_cast<const int32_t*>(ids));
}

}  // namespace

void CpuBackend::embedding_forward(int64_t n, const void* ids, DType id_dtype, int64_t dim, const float* table,
                                   float* out) {
  dispatch_ids(id_dtype, ids, [&](const auto* id) { gather_rows(n, id, dim, table, out); });
}

void CpuBackend::embedding_backward(int64_t n, const void* ids, DType id_dtype, int64_t vocab, int64_t dim,
                                    const float* dy, float* dtable) {
  (void)vocab;  // ids were range-checked by the op
  dispatch_ids(id_dtype, ids, [&](const auto* id) { scatter_add_rows_by_id(n, id, dim, dy, dtable); });
}

}  // namespace ld
