// The conversions around cuBLASLt products (declared in gemm_context.hpp).
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/gemm_context.hpp"

namespace ld::cuda {

void pack_half(cudaStream_t s, const float* src, int64_t items, int64_t item_stride, int64_t rows, int64_t cols,
               int64_t ld, uint16_t* dst, int64_t dst_ld, bool fp16) {
  const int64_t per_item = rows * cols;
  if (ld == cols && dst_ld == cols && (items == 1 || item_stride == per_item)) {  // one flat run: no divisions
    launch_map(s, items * per_item, [=] __device__(int64_t i) {
      dst[i] = fp16 ? f32_to_f16_bits(src[i]) : f32_to_bf16_bits(src[i]);
    });
    return;
  }
  launch_map(s, items * per_item, [=] __device__(int64_t i) {
    const int64_t row = i / cols, c = i - row * cols;  // row counts over all items
    const int64_t item = row / rows, r = row - item * rows;
    const float v = src[item * item_stride + r * ld + c];
    dst[row * dst_ld + c] = fp16 ? f32_to_f16_bits(v) : f32_to_bf16_bits(v);
  });
}

void repack_half(cudaStream_t s, const uint16_t* src, int64_t items, int64_t item_stride, int64_t rows, int64_t cols,
                 int64_t ld, uint16_t* dst, int64_t dst_ld) {
  launch_map(s, items * rows * cols, [=] __device__(int64_t i) {
    const int64_t row = i / cols, c = i - row * cols;  // row counts over all items
    const int64_t item = row / rows, r = row - item * rows;
    dst[row * dst_ld + c] = src[item * item_stride + r * ld + c];
  });
}

void round_to_f16(cudaStream_t s, float* c, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t per_item = rows * cols;
  launch_map(s, batch * per_item, [=] __device__(int64_t i) {
    const int64_t b = i / per_item, r = (i % per_item) / cols, col = i % cols;
    float& v = c[b * stride + r * ld + col];
    v = f16_bits_to_f32(f32_to_f16_bits(v));
  });
}

void scale_matrix(cudaStream_t s, float* c, int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld,
                  float beta, const float* bias) {
  const int64_t per_item = rows * cols;
  launch_map(s, batch * per_item, [=] __device__(int64_t i) {
    const int64_t b = i / per_item, r = (i % per_item) / cols, col = i % cols;
    float& v = c[b * stride + r * ld + col];
    const float kept = beta == 0.0f ? 0.0f : beta * v;
    v = bias != nullptr ? kept + bias[col] : kept;
  });
}

void widen_bf16(cudaStream_t s, const uint16_t* w, int64_t n, float* out) {
  launch_map(s, n, [=] __device__(int64_t i) { out[i] = bf16_bits_to_f32(w[i]); });
}

}  // namespace ld::cuda
