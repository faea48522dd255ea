#pragma once
// Matrix products in bf16 or fp16 (GemmArgs::precision) on the CPU: see gemm_half.cpp.
#include "backend/backend.hpp"

namespace ld::cpu {

using F32Gemm = void (*)(const GemmArgs&);

// Runs g, whose precision is bf16 or fp16. f32_gemm runs the f32 products the emulated paths
// reduce to (operands rounded into f32 buffers).
void gemm_half(const GemmArgs& g, F32Gemm f32_gemm);

// Whether bf16 products run on oneDNN's bf16 kernels here (false: emulated in f32, same results).
bool has_native_bf16_gemm();

// Tests: force the emulated bf16 path (what a CPU without bf16 kernels runs) while alive.
class ForceEmulatedBf16 {
 public:
  ForceEmulatedBf16();
  ~ForceEmulatedBf16();
  ForceEmulatedBf16(const ForceEmulatedBf16&) = delete;
  ForceEmulatedBf16& operator=(const ForceEmulatedBf16&) = delete;
};

}  // namespace ld::cpu
