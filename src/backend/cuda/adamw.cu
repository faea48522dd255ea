// AdamW over every parameter of a step in a few launches (cpu/adamw.cpp does the same math one
// buffer at a time). Up to kBuffersPerLaunch buffers travel in the kernel's parameter block (no
// host-to-device copy, no sync); each buffer gets ceil(n / kChunk) thread blocks. GPT-2 124M's 148
// parameters take 4 launches instead of 148. The bias corrections are computed once on the host, as
// the CPU does, so both backends use the same constants. A buffer with a bf16 working copy gets it
// written in the same pass, rounded as round_bf16 rounds (the same Philox draw per element as the CPU).
#include <cmath>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/device_util.cuh"

namespace ld {

namespace {

constexpr int kBuffersPerLaunch = 36;       // 36 * 100 bytes stays under the 4 KB parameter limit
constexpr int64_t kChunk = int64_t(1) << 16;  // elements per thread block

struct AdamWBatch {
  float* param[kBuffersPerLaunch];
  const float* grad[kBuffersPerLaunch];
  float* m[kBuffersPerLaunch];
  float* v[kBuffersPerLaunch];
  uint16_t* param_bf16[kBuffersPerLaunch];  // or null
  uint64_t rounding_key[kBuffersPerLaunch], rounding_counter[kBuffersPerLaunch];
  int64_t n[kBuffersPerLaunch];
  int32_t first_block[kBuffersPerLaunch + 1];  // buffer b owns blocks [first_block[b], first_block[b + 1])
  float beta1[kBuffersPerLaunch], beta2[kBuffersPerLaunch], eps[kBuffersPerLaunch], grad_scale[kBuffersPerLaunch];
  float decay[kBuffersPerLaunch], step_size[kBuffersPerLaunch], inv_sqrt_bc2[kBuffersPerLaunch];
  int count;
};
static_assert(sizeof(AdamWBatch) <= 4000, "AdamWBatch must fit the kernel parameter block");

// x rounded to bf16 as element i of a round_bf16 call with this key and counter.
__device__ inline uint16_t working_bf16(float x, int64_t i, uint64_t key, uint64_t counter) {
  if (key == 0) return cuda::f32_to_bf16_bits(x);
  const cuda::Philox4 r = cuda::philox4x32(key, counter + uint64_t(i / 4));
  const int lane = int(i & 3);  // selects without a runtime array index, which would spill r to local memory
  const uint32_t draw = lane == 0 ? r.v[0] : lane == 1 ? r.v[1] : lane == 2 ? r.v[2] : r.v[3];
  return cuda::f32_to_bf16_stochastic_bits(x, draw);
}

__global__ void adamw_batch_kernel(const __grid_constant__ AdamWBatch batch) {
  int b = 0;
  while (b + 1 < batch.count && int32_t(blockIdx.x) >= batch.first_block[b + 1]) ++b;
  const int64_t lo = (int64_t(blockIdx.x) - batch.first_block[b]) * kChunk;
  const int64_t hi = min(batch.n[b], lo + kChunk);
  float *p = batch.param[b], *m = batch.m[b], *v = batch.v[b];
  const float* grad = batch.grad[b];
  uint16_t* p16 = batch.param_bf16[b];
  const uint64_t key = batch.rounding_key[b], counter = batch.rounding_counter[b];
  const float beta1 = batch.beta1[b], beta2 = batch.beta2[b], eps = batch.eps[b], scale = batch.grad_scale[b];
  const float decay = batch.decay[b], step_size = batch.step_size[b], inv_sqrt_bc2 = batch.inv_sqrt_bc2[b];
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const float g = grad[i] * scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float pi = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    p[i] = pi;
    if (p16 != nullptr) p16[i] = working_bf16(pi, i, key, counter);
  }
}

__global__ void round_bf16_kernel(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = working_bf16(x[i], i, key, counter);
}

// Adds buffer a to the batch: its constants as cpu/adamw.cpp computes them.
void add_buffer(AdamWBatch& batch, const AdamWArgs& a) {
  const int i = batch.count++;
  const float bc1 = 1.0f - std::pow(a.beta1, float(a.step));
  const float bc2 = 1.0f - std::pow(a.beta2, float(a.step));
  batch.param[i] = a.param, batch.grad[i] = a.grad, batch.m[i] = a.m, batch.v[i] = a.v, batch.n[i] = a.n;
  batch.param_bf16[i] = a.param_bf16, batch.rounding_key[i] = a.rounding_key;
  batch.rounding_counter[i] = a.rounding_counter;
  batch.beta1[i] = a.beta1, batch.beta2[i] = a.beta2, batch.eps[i] = a.eps, batch.grad_scale[i] = a.grad_scale;
  batch.step_size[i] = a.lr / bc1;
  batch.inv_sqrt_bc2[i] = 1.0f / std::sqrt(bc2);
  batch.decay[i] = 1.0f - a.lr * a.weight_decay;
  batch.first_block[i + 1] = batch.first_block[i] + int32_t((a.n + kChunk - 1) / kChunk);
}

}  // namespace

void CudaBackend::adamw_step(std::span<const AdamWArgs> buffers) {
  activate();
  AdamWBatch batch{};
  auto launch = [&] {
    if (batch.first_block[batch.count] > 0)
      LD_CUDA_LAUNCH(adamw_batch_kernel, unsigned(batch.first_block[batch.count]), cuda::kThreads, 0, stream())(batch);
    LD_CUDA_CHECK(cudaGetLastError());
    batch = AdamWBatch{};
  };
  for (const AdamWArgs& a : buffers) {
    if (a.n == 0) continue;
    add_buffer(batch, a);
    if (batch.count == kBuffersPerLaunch) launch();
  }
  if (batch.count > 0) launch();
}

void CudaBackend::round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter) {
  if (n == 0) return;
  activate();
  LD_CUDA_LAUNCH(round_bf16_kernel, cuda::grid_for(n), cuda::kThreads, 0, stream())(n, x, y, key, counter);
  LD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ld
