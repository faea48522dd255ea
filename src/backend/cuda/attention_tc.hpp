#pragma once
// The tensor-core flash-attention path (attention_tc.cu): bf16 MMA with f32 accumulation for the
// common training shapes, chosen by CudaBackend::attention_forward/backward over the FP32 kernels
// when the caller allows reduced precision (AttentionArgs::allow_bf16). Same contract as the FP32
// kernels (backend.hpp): f32 buffers, the same lse, dq/dk/dv contiguous.
#include <cuda_runtime.h>

#include <initializer_list>

#include "backend/backend.hpp"

namespace ld::cuda_attention_tc {

// True when these kernels take the call: bf16 allowed, head dim 64 or 128 (an additive mask or not), and
// every buffer 16-byte aligned with strides a multiple of 4 floats (rows are copied 16 bytes at a time).
bool applies(const AttentionArgs& a, std::initializer_list<const void*> buffers);

// out and lse as attention_forward's. Needs batch * q_heads * q_len > 0.
void forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out, float* lse,
             cudaStream_t stream);

// dq must be zeroed (it is accumulated with atomics); delta[b, h, t] = <dout, out> over the head dim.
// dk, dv are overwritten. Needs batch * kv_heads * kv_len > 0.
void backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout,
              const float* lse, const float* delta, float* dq, float* dk, float* dv, cudaStream_t stream);

}  // namespace ld::cuda_attention_tc
