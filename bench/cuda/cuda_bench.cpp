// CUDA microbenchmarks for the device window (bench/cuda/device_checks.sh): GEMM through the
// backend's cuBLASLt path (bf16 autocast: f32 buffers rounded to bf16, f32 accumulation; and pure
// FP32) at 4096^3, and the attention kernels (FP32 and bf16 tensor cores) at GPT-2 124M's shape
// (B=8, H=12, T=1024, D=64, causal). Prints one markdown table row per measurement: name | ms |
// TFLOP/s. Times are wall clock around `iters` calls after a warm-up, with the stream synchronised
// at both ends.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "backend/cuda/cuda_backend.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"

namespace {

using ld::Tensor;
constexpr ld::Device kGPU{ld::DeviceKind::cuda, 0};

double time_ms(ld::Backend& be, int iters, const std::function<void()>& body) {
  for (int i = 0; i < 3; ++i) body();
  be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) body();
  be.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

void row(const std::string& name, double ms, double flops) {
  std::printf("| %s | %.3f | %.1f |\n", name.c_str(), ms, flops / (ms * 1e-3) / 1e12);
}

void bench_gemm(ld::Backend& be, ld::ComputePrecision precision, const std::string& name) {
  const int64_t n = 4096;
  ld::Generator gen(1);
  Tensor a = ld::randn({n, n}, &gen).to(kGPU), b = ld::randn({n, n}, &gen).to(kGPU), c = ld::empty({n, n}, ld::DType::f32, kGPU);
  ld::GemmArgs g;
  g.m = g.n = g.k = n;
  g.a = a.data<float>(), g.lda = n, g.b = b.data<float>(), g.ldb = n, g.c = c.data<float>(), g.ldc = n;
  g.precision = precision;
  row(name, time_ms(be, 20, [&] { be.gemm(g); }), 2.0 * double(n) * double(n) * double(n));
}

void bench_attention(ld::Backend& be) {
  const int64_t B = 8, H = 12, T = 1024, D = 64;
  ld::Generator gen(2);
  Tensor q = ld::randn({B, H, T, D}, &gen).to(kGPU), k = ld::randn({B, H, T, D}, &gen).to(kGPU);
  Tensor v = ld::randn({B, H, T, D}, &gen).to(kGPU), dout = ld::randn({B, H, T, D}, &gen).to(kGPU);
  Tensor out = ld::empty({B, H, T, D}, ld::DType::f32, kGPU), lse = ld::empty({B, H, T}, ld::DType::f32, kGPU);
  Tensor dq = ld::empty({B, H, T, D}, ld::DType::f32, kGPU), dk = ld::empty({B, H, T, D}, ld::DType::f32, kGPU);
  Tensor dv = ld::empty({B, H, T, D}, ld::DType::f32, kGPU);
  ld::AttentionArgs a;
  a.batch = B, a.q_heads = a.kv_heads = H, a.q_len = a.kv_len = T, a.head_dim = D;
  a.scale = float(1.0 / std::sqrt(double(D))), a.causal = true;
  for (int i = 0; i < 3; ++i) {
    const int64_t s[3] = {H * T * D, T * D, D};
    a.q_stride[i] = a.k_stride[i] = a.v_stride[i] = a.o_stride[i] = s[i];
  }
  // causal: half of the 4*B*H*T*T*D flops of QK^T and PV
  const double fwd_flops = 4.0 * double(B * H) * double(T) * double(T) * double(D) / 2.0;
  // allow_bf16: the tensor-core kernels (bf16 operands, f32 accumulation), else the FP32 ones.
  for (bool tensor_cores : {false, true}) {
    a.allow_bf16 = tensor_cores;
    const std::string kind = tensor_cores ? "bf16 tensor cores" : "fp32";
    row("attention fwd " + kind + " causal B=8 H=12 T=1024 D=64",
        time_ms(be, 10,
                [&] {
                  be.attention_forward(a, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                       lse.data<float>());
                }),
        fwd_flops);
    row("attention bwd " + kind + " causal B=8 H=12 T=1024 D=64",
        time_ms(be, 5,
                [&] {
                  be.attention_backward(a, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                        dout.data<float>(), lse.data<float>(), dq.data<float>(), dk.data<float>(),
                                        dv.data<float>());
                }),
        2.5 * fwd_flops);  // FlashAttention's convention: backward = 2.5x the forward's matmul flops
  }
}

}  // namespace

int main() {
  if (ld::cuda_device_count() == 0) {
    std::printf("no CUDA device: %s\n", ld::cuda_unavailable_reason().c_str());
    return 2;
  }
  ld::Backend& be = ld::cuda_backend(0);
  std::printf("| benchmark | ms | TFLOP/s |\n|---|---|---|\n");
  bench_gemm(be, ld::ComputePrecision::bf16, "gemm bf16 (f32 buffers, autocast) 4096^3");
  bench_gemm(be, ld::ComputePrecision::f32, "gemm fp32 (no TF32) 4096^3");
  bench_attention(be);
  return 0;
}
