// Embedding gather / scatter-add (cpu/embedding.cpp) and rotary position embedding
// (cpu/rope.cpp). The embedding backward adds rows with atomicAdd, so the order of the sums (and
// the last bits of a row hit by many ids) varies from run to run. RoPE forms the angle and its
// cos/sin in double, as the CPU does: at positions in the tens of thousands a float angle is
// already off by more than the rotation between neighbouring positions.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace cuda_embedding {

template <typename Id>
void gather(cudaStream_t s, int64_t n, const Id* ids, int64_t dim, const float* table, float* out) {
  cuda::launch_map(s, n * dim, [=] __device__(int64_t i) { out[i] = table[int64_t(ids[i / dim]) * dim + i % dim]; });
}

template <typename Id>
void scatter_add(cudaStream_t s, int64_t n, const Id* ids, int64_t dim, const float* dy, float* dtable) {
  cuda::launch_map(s, n * dim,
                   [=] __device__(int64_t i) { atomicAdd(dtable + int64_t(ids[i / dim]) * dim + i % dim, dy[i]); });
}

}  // namespace cuda_embedding

using namespace cuda_embedding;

void CudaBackend::embedding_forward(int64_t n, const void* ids, DType id_dtype, int64_t dim, const float* table,
                                    float* out) {
  LD_ASSERT(id_dtype == DType::i32 || id_dtype == DType::i64, "embedding kernel: ids must be i32 or i64, got ",
            dtype_name(id_dtype));
  if (id_dtype == DType::i64)
    gather(stream(), n, static_cast<const int64_t*>(ids), dim, table, out);
  else
    gather(stream(), n, static_cast<const int32_t*>(ids), dim, table, out);
}

void CudaBackend::embedding_backward(int64_t n, const void* ids, DType id_dtype, int64_t vocab, int64_t dim,
                                     const float* dy, float* dtable) {
  (void)vocab;  // ids were range-checked by the op
  LD_ASSERT(id_dtype == DType::i32 || id_dtype == DType::i64, "embedding kernel: ids must be i32 or i64, got ",
            dtype_name(id_dtype));
  if (id_dtype == DType::i64)
    scatter_add(stream(), n, static_cast<const int64_t*>(ids), dim, dy, dtable);
  else
    scatter_add(stream(), n, static_cast<const int32_t*>(ids), dim, dy, dtable);
}

// One thread per (row, rotary pair): its cos/sin once, applied to every head.
void CudaBackend::rope(const RopeArgs& a, const float* x, float* y) {
  LD_ASSERT(a.rotary_dim >= 0 && a.rotary_dim <= a.head_dim && a.rotary_dim % 2 == 0, "rope: rotary_dim ",
            a.rotary_dim, " must be even and at most head_dim ", a.head_dim);
  const int64_t half = a.rotary_dim / 2, rows = a.batch * a.seq, D = a.head_dim, heads = a.heads, seq = a.seq;
  const int64_t rotary = a.rotary_dim, pos_stride = a.pos_batch_stride;
  const int64_t* positions = a.positions;
  const double theta = a.theta, sign = a.inverse ? -1.0 : 1.0;
  const bool interleaved = a.layout == RopeLayout::interleaved;
  cudaStream_t s = stream();
  cuda::launch_map(s, rows * half, [=] __device__(int64_t e) {
    const int64_t r = e / half, i = e % half, b = r / seq, t = r % seq;
    const double angle = double(positions[b * pos_stride + t]) * pow(theta, -double(2 * i) / double(rotary));
    const float c = float(cos(angle)), sn = float(sign * sin(angle));
    const int64_t lo = interleaved ? 2 * i : i, hi = interleaved ? 2 * i + 1 : i + half;
    for (int64_t h = 0; h < heads; ++h) {
      const float* xh = x + (r * heads + h) * D;
      float* yh = y + (r * heads + h) * D;
      const float x0 = xh[lo], x1 = xh[hi];
      yh[lo] = x0 * c - x1 * sn;
      yh[hi] = x0 * sn + x1 * c;
    }
  });
  if (x != y && rotary < D) {  // the dims past rotary_dim pass through
    const int64_t pass = D - rotary;
    cuda::launch_map(s, rows * heads * pass, [=] __device__(int64_t e) {
      const int64_t row = e / pass, d = rotary + e % pass;
      y[row * D + d] = x[row * D + d];
    });
  }
}

}  // namespace ld
