// src/backend/cuda/attention.cu run on the CPU (see softmax_ce_emulation_test.cpp for how): the real
// CudaBackend::attention_forward/backward with its FP32 flash-attention kernels (and the
// output_grad_dot_kernel that feeds the backward) against the CPU backend, in the cases and under the
// tolerances of cuda_ops_test.cpp's attention test (out, lse 1e-5 relative and 1e-5 absolute;
// gradients 1e-4 and 1e-5): causal, GQA, a KV cache with q strided as the projections leave it, an
// additive mask with fully masked keys, a decode step, head dims 32, 64, 80 and 256 (all three
// instantiations of each kernel). attention_tc.cu is compiled in too, since attention.cu hands
// allow_bf16 calls to it; these cases leave allow_bf16 off, so the FP32 kernels run.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <cuda_runtime.h>  // the shim

#include "backend/cpu/cpu_backend.hpp"
#include "attention_test_args.hpp"
#include "emulation_util.hpp"

// Both files' namespaces renamed (see softmax_ce_emulation_test.cpp).
#define cuda_attention ld_simt_cuda_attention
#define cuda_attention_tc ld_simt_cuda_attention_tc

// The arrays the kernels' `extern __shared__ float smem[]` name (thread_local, as the shim makes
// __shared__).
namespace ld::cuda_attention {
alignas(128) thread_local float smem[simt::kMaxDynamicSharedBytes / sizeof(float)];
}
namespace ld::cuda_attention_tc {
namespace {
alignas(128) thread_local float smem[simt::kMaxDynamicSharedBytes / sizeof(float)];
}  // namespace
}  // namespace ld::cuda_attention_tc

#include "backend/cuda/attention.cu"
#include "backend/cuda/attention_tc.cu"

namespace ld::emulation_test {
namespace {

struct Case {
  const char* name;
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal, strided_q, mask;
};

const Case kCases[] = {
    {"CausalGqa4to2T45D64", 1, 4, 2, 45, 45, 64, true, false, false},   // tiles of 32 cut short
    {"KvCacheStridedQTq7Tk50D80", 1, 2, 2, 7, 50, 80, true, true, false},  // D=80: the <=128 kernels, dims unused
    {"MaskNonCausalStridedQTq33Tk40D32", 2, 2, 1, 33, 40, 32, false, true, true},
    {"DecodeStepTq1Tk37D64", 1, 2, 1, 1, 37, 64, true, false, false},
    {"MaskCausalT20D256", 1, 1, 1, 20, 20, 256, true, false, true},  // the largest instantiations
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class CudaEmulationAttention : public ::testing::TestWithParam<Case> {};

TEST_P(CudaEmulationAttention, Fp32FlashAttentionMatchesCpu) {
  const Case& c = GetParam();
  const int64_t B = c.batch, Hq = c.q_heads, Hk = c.kv_heads, Tq = c.q_len, Tk = c.kv_len, D = c.head_dim;
  simt::set_shared(cuda_attention::smem, sizeof cuda_attention::smem);  // what LD_CUDA_LAUNCH's kernels get
  const ld::emulation_test::EmulatedRun run{c.name};

  Normal normal;
  const size_t q_size = size_t(B * Hq * Tq * D), kv_size = size_t(B * Hk * Tk * D), rows = size_t(B * Hq * Tq);
  std::vector<float> q(q_size), k(kv_size), v(kv_size), dout(q_size), mask(c.mask ? size_t(B * Tq * Tk) : 0);
  for (std::vector<float>* buf : {&q, &k, &v, &dout})
    for (float& e : *buf) e = normal();
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = i % 5 == 0 ? -INFINITY : 2.0f * normal();  // fully masked keys too
  Mirror<float> qd(q), kd(k), vd(v), doutd(dout), maskd(mask);

  AttentionArgs a =
      test::attention_test_args(B, Hq, Hk, Tq, Tk, D, c.causal, c.strided_q, c.mask ? mask.data() : nullptr);

  std::vector<float> out(q_size), lse(rows), dq(q_size), dk(kv_size), dv(kv_size);
  cpu_backend().attention_forward(a, q.data(), k.data(), v.data(), out.data(), lse.data());
  cpu_backend().attention_backward(a, q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(), dq.data(),
                                   dk.data(), dv.data());

  // Outputs start as NaN (DeviceBuffer's fill), so anything the kernels fail to write shows.
  simt::DeviceBuffer<float> outd(q_size), lsed(rows), dqd(q_size), dkd(kv_size), dvd(kv_size);
  a.mask = c.mask ? maskd.device.data() : nullptr;
  CudaBackend be;
  be.attention_forward(a, qd.device.data(), kd.device.data(), vd.device.data(), outd.data(), lsed.data());
  be.attention_backward(a, qd.device.data(), kd.device.data(), vd.device.data(), outd.data(), doutd.device.data(),
                        lsed.data(), dqd.data(), dkd.data(), dvd.data());

  expect_close(outd.data(), out.data(), q_size, 1e-5, 1e-5, std::string(c.name) + " out");
  expect_close(lsed.data(), lse.data(), rows, 1e-5, 1e-5, std::string(c.name) + " lse");
  expect_close(dqd.data(), dq.data(), q_size, 1e-4, 1e-5, std::string(c.name) + " dq");
  expect_close(dkd.data(), dk.data(), kv_size, 1e-4, 1e-5, std::string(c.name) + " dk");
  expect_close(dvd.data(), dv.data(), kv_size, 1e-4, 1e-5, std::string(c.name) + " dv");
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaEmulationAttention, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace ld::emulation_test
