// The tensor-core flash attention (src/backend/cuda/attention_tc.cu) run on the CPU: that very file
// is #included below and compiled by the host compiler against the shim headers in shim/, its
// kernels executed by simt.hpp (one fiber per CUDA thread), and out, lse, dq, dk, dv compared with
// a float64 reference under the tolerances of tests/cuda/cuda_attention_tc_test.cpp. So every CI run
// checks the kernels' logic, though CI has no GPU.
//
// What this checks: the index arithmetic, tiling, causal/GQA/mask/padding logic and the host-side
// grid and shared-memory sizing (forward/backward and launch as written; LD_CUDA_LAUNCH runs the
// kernel on the emulator); the mma.sync m16n8k16 fragment layouts (emulated from the PTX ISA, not
// from mma_bf16.cuh's comments); the cp.async pipeline (data lands only at cp.async.wait_group, NaN before), __syncthreads
// placement (warps run far ahead of each other), warp shuffles, float2 atomics, shared memory
// starting as NaN, 16-byte cp.async and float2 alignment, writes past the launch's shared memory and
// global accesses past the end of a buffer (guard pages). Planted bugs (swapped fragment registers,
// waiting for the wrong cp.async group, a missing __syncthreads) make these tests fail.
// What it cannot check: timing and performance (bank conflicts, occupancy, register spills), races
// the chosen schedule does not provoke, the PTX encoding and nvcc's compilation itself (the CUDA
// build and the GPU tests do), the hardware's f32 accumulation order inside the MMA, and the ulps of
// the device's exp2f/logf (host libm here); a uint32_t load of two bf16 is not alignment-checked.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>  // the shim: CUDA C++ onto simt.hpp

#include "attention_test_args.hpp"
#include "emulation_util.hpp"

// What the kernels' `extern __shared__ float smem[]` names; it must be in attention_tc.cu's (this
// translation unit's) anonymous namespace. LD_CUDA_LAUNCH's kernels get it (simt::set_shared).
namespace ld::cuda_attention_tc {
namespace {
alignas(128) thread_local float smem[simt::kMaxDynamicSharedBytes / sizeof(float)];  // thread_local: see the shim
}  // namespace
}  // namespace ld::cuda_attention_tc

#include "backend/cuda/attention_tc.cu"

namespace ld::test {
namespace {

using simt::DeviceBuffer;

constexpr double kOutTol = 1e-2, kGradTol = 3e-2;  // as cuda_attention_tc_test.cpp

struct Case {
  const char* name;
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal, strided_q = false, mask = false;
};

// Small enough that the suite takes about a second; together: GQA, both head dims, tiles cut short,
// a KV cache with strided q, queries that see no key, padding masks with a fully masked row.
const Case kCases[] = {
    {"CausalGqa4to1T100D64", 1, 4, 1, 100, 100, 64, true},  // T not a multiple of the 64-row tiles
    {"KvCacheStridedQTq30Tk130D128", 1, 4, 1, 30, 130, 128, true, true},  // q in [B, T, H, D] memory
    {"MoreQueriesThanKeysTq70Tk20D64", 1, 2, 1, 70, 20, 64, true},        // first 50 queries see nothing
    {"PaddingMaskNonCausalT65D128", 2, 2, 1, 65, 65, 128, false, false, true},
    {"PaddingMaskCausalKvCacheD64", 1, 2, 2, 30, 100, 64, true, true, true},
    {"CausalStridedQT130D128", 1, 2, 2, 130, 130, 128, true, true},  // backward blocks start past query 0
    {"DecodeStepTq1Tk37D64", 1, 2, 1, 1, 37, 64, true},
};

// N(0, 1) from a fixed engine (Box-Muller on mt19937_64, identical on every platform).
struct Normal {
  std::mt19937_64 engine{1234};
  float operator()() {
    const double u1 = (double(engine() >> 11) + 1.0) / 9007199254740993.0, u2 = double(engine() >> 11) / 9007199254740992.0;
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

// ||got - want|| / ||want|| over the finite entries of want; an infinite entry must be matched
// exactly, and a NaN anywhere in got gives infinity.
double relative_error(const float* got, const std::vector<double>& want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    if (std::isinf(want[i])) {
      if (double(got[i]) != want[i]) return INFINITY;
      continue;
    }
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};

// Attention by definition in float64 (AttentionArgs' contract, backend.hpp): a query sees key j
// unless j >= kv_len or, causally, j > i + kv_len - q_len; the mask is added to the scaled scores;
// a query that sees nothing gets out 0, lse -inf and no gradient. dq, dk, dv are contiguous.
Reference reference(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* dout) {
  const int64_t B = a.batch, Hq = a.q_heads, Hk = a.kv_heads, Tq = a.q_len, Tk = a.kv_len, D = a.head_dim;
  Reference r{std::vector<double>(size_t(B * Hq * Tq * D)), std::vector<double>(size_t(B * Hq * Tq)),
              std::vector<double>(size_t(B * Hq * Tq * D)), std::vector<double>(size_t(B * Hk * Tk * D)),
              std::vector<double>(size_t(B * Hk * Tk * D))};
  std::vector<double> p(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t hk = h / (Hq / Hk), row = (b * Hq + h) * Tq + i;
        const float* qi = q + b * a.q_stride[0] + h * a.q_stride[1] + i * a.q_stride[2];
        const float* di = dout + b * a.o_stride[0] + h * a.o_stride[1] + i * a.o_stride[2];
        auto key = [&](const float* base, const int64_t* s, int64_t j) { return base + b * s[0] + hk * s[1] + j * s[2]; };
        double m = -INFINITY;
        for (int64_t j = 0; j < Tk; ++j) {
          p[size_t(j)] = -INFINITY;
          if (a.causal && j > i + Tk - Tq) continue;
          double s = 0.0;
          for (int64_t x = 0; x < D; ++x) s += double(qi[x]) * key(k, a.k_stride, j)[x];
          s *= a.scale;
          if (a.mask) s += a.mask[b * a.mask_stride[0] + h * a.mask_stride[1] + i * a.mask_stride[2] + j * a.mask_stride[3]];
          p[size_t(j)] = s;
          m = std::max(m, s);
        }
        if (m == -INFINITY) {
          r.lse[size_t(row)] = -INFINITY;
          continue;
        }
        double l = 0.0;
        for (double& pj : p) l += (pj = std::exp(pj - m));
        r.lse[size_t(row)] = m + std::log(l);
        double* o = &r.out[size_t(row * D)];
        for (int64_t j = 0; j < Tk; ++j)
          for (int64_t x = 0; x < D; ++x) o[x] += p[size_t(j)] / l * key(v, a.v_stride, j)[x];
        double delta = 0.0;
        for (int64_t x = 0; x < D; ++x) delta += di[x] * o[x];
        for (int64_t j = 0; j < Tk; ++j) {
          const double pj = p[size_t(j)] / l;
          if (pj == 0.0) continue;
          double dp = 0.0;
          for (int64_t x = 0; x < D; ++x) dp += double(di[x]) * key(v, a.v_stride, j)[x];
          const double ds = pj * (dp - delta) * a.scale;
          const int64_t kv_row = (b * Hk + hk) * Tk + j;
          for (int64_t x = 0; x < D; ++x) {
            r.dq[size_t(row * D + x)] += ds * key(k, a.k_stride, j)[x];
            r.dk[size_t(kv_row * D + x)] += ds * qi[x];
            r.dv[size_t(kv_row * D + x)] += pj * di[x];
          }
        }
      }
  return r;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }  // gtest's name for a failing case

class CudaEmulation : public ::testing::TestWithParam<Case> {};

// Forward and backward through ld::cuda_attention_tc::forward/backward (kernels on the emulator),
// buffers as CudaBackend passes them, then every output against the float64 reference.
TEST_P(CudaEmulation, TensorCoreAttentionMatchesFloat64Reference) {
  const Case& c = GetParam();
  const int64_t B = c.batch, Hq = c.q_heads, Hk = c.kv_heads, Tq = c.q_len, Tk = c.kv_len, D = c.head_dim;
  const ld::emulation_test::EmulatedRun run{c.name};

  Normal normal;
  const size_t q_size = size_t(B * Hq * Tq * D), kv_size = size_t(B * Hk * Tk * D), rows = size_t(B * Hq * Tq);
  DeviceBuffer<float> q(q_size), k(kv_size), v(kv_size), dout(q_size), mask(c.mask ? size_t(B * Tq * Tk) : 1);
  for (DeviceBuffer<float>* buf : {&q, &k, &v, &dout})
    for (size_t i = 0; i < buf->size(); ++i) (*buf)[i] = normal();
  if (c.mask) {  // N(0, 1), the last batch's last 5 keys padded, batch 0's third query sees nothing
    for (size_t i = 0; i < mask.size(); ++i) mask[i] = normal();
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = std::max<int64_t>(0, Tk - 5); j < Tk; ++j) mask[size_t(((B - 1) * Tq + i) * Tk + j)] = -INFINITY;
    for (int64_t j = 0; j < Tk; ++j) mask[size_t(2 * Tk + j)] = -INFINITY;
  }

  AttentionArgs a = attention_test_args(B, Hq, Hk, Tq, Tk, D, c.causal, c.strided_q, c.mask ? mask.data() : nullptr);
  a.allow_bf16 = true;

  // Outputs start as NaN (DeviceBuffer's fill), so anything the kernels fail to write shows; dq is
  // accumulated with atomics and must start at zero.
  DeviceBuffer<float> out(q_size), lse(rows), delta(rows), dq(q_size), dk(kv_size), dv(kv_size);
  std::memset(dq.data(), 0, q_size * sizeof(float));
  ASSERT_TRUE(cuda_attention_tc::applies(a, {q.data(), k.data(), v.data(), out.data(), dout.data(), dq.data(),
                                             dk.data(), dv.data()}))
      << "CudaBackend would not take the tensor-core path for these arguments";
  simt::set_shared(cuda_attention_tc::smem, sizeof cuda_attention_tc::smem);
  cuda_attention_tc::forward(a, q.data(), k.data(), v.data(), out.data(), lse.data(), nullptr);
  for (size_t r = 0; r < rows; ++r) {  // as CudaBackend's output_grad_dot_kernel: <dout, out> per row
    double s = 0.0;
    for (int64_t x = 0; x < D; ++x) s += double(dout[r * size_t(D) + size_t(x)]) * out[r * size_t(D) + size_t(x)];
    delta[r] = float(s);
  }
  cuda_attention_tc::backward(a, q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(), dq.data(),
                              dk.data(), dv.data(), nullptr);

  const Reference want = reference(a, q.data(), k.data(), v.data(), dout.data());
  const float* got[] = {out.data(), lse.data(), dq.data(), dk.data(), dv.data()};
  const std::vector<double>* wanted[] = {&want.out, &want.lse, &want.dq, &want.dk, &want.dv};
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  for (int i = 0; i < 5; ++i) {
    const double err = relative_error(got[i], *wanted[i]), tol = i < 2 ? kOutTol : kGradTol;
    EXPECT_LE(err, tol) << c.name << " " << names[i] << ": relative error " << err
                        << (std::isinf(err) ? " (a NaN, or an infinite lse not matched)" : "");
    std::printf("[ emulated ] %s %s: relative error %.2e\n", c.name, names[i], err);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaEmulation, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& test) { return std::string(test.param.name); });

}  // namespace
}  // namespace ld::test

// The emulator itself: the hazards the attention test relies on it to expose must stay exposed.
namespace simt_self_test {
namespace {
alignas(128) thread_local float smem[256];

// 64 threads each cp.async one 16-byte chunk (row threadIdx.x of src), then record what they see:
// their own chunk before the wait (in flight), a chunk of the other warp after their own wait but
// before the barrier (not landed: that warp has not run), and after the barrier (landed).
__global__ void cp_async_visibility(const float* src, float* seen) {
  extern __shared__ __align__(16) float smem[];
  const unsigned t = threadIdx.x, other = (t + 32) % 64;
  ld::cuda::cp_async_16(smem + 4 * t, src + 4 * t, true);
  ld::cuda::cp_async_commit();
  seen[3 * t] = smem[4 * t];
  ld::cuda::cp_async_wait<0>();
  seen[3 * t + 1] = smem[4 * other];
  __syncthreads();
  seen[3 * t + 2] = smem[4 * other] + float(__shfl_xor_sync(0xffffffffu, int(t), 5) - int(t ^ 5u));
}

LD_SIMT_OWN_ALIGNMENT_CHECK __global__ void misaligned_float2(const float* src, float* dst) {
  if (threadIdx.x != 5) return;
  const float2 x = *reinterpret_cast<const float2*>(src + 1);  // 4-byte aligned only
  dst[0] = x.x;
}

TEST(CudaEmulation, EmulatorExposesEarlyCpAsyncReadsAndMisalignedAccesses) {
  simt::DeviceBuffer<float> src(256), seen(3 * 64);
  for (size_t i = 0; i < src.size(); ++i) src[i] = float(i);
  const int errors_before = simt::error_count();
  simt::launch(1, 64, 256 * sizeof(float), smem, sizeof smem, [&] { cp_async_visibility(src.data(), seen.data()); });
  EXPECT_EQ(simt::error_count(), errors_before);
  for (unsigned t = 0; t < 64; ++t) {
    const unsigned other = (t + 32) % 64;
    EXPECT_TRUE(std::isnan(seen[3 * t])) << "thread " << t << " read its cp.async destination before the wait";
    if (t < 32) {
      EXPECT_TRUE(std::isnan(seen[3 * t + 1])) << "thread " << t << " saw warp 1's copy before the barrier";
    }
    EXPECT_EQ(seen[3 * t + 2], float(4 * other)) << "thread " << t << ": after the barrier, or a shuffle";
  }
  std::printf("[ expected ] one misaligned float2 access, from thread 5:\n");
  std::fflush(stdout);
  simt::launch(1, 32, 0, smem, sizeof smem, [&] { misaligned_float2(src.data(), seen.data()); });
  EXPECT_EQ(simt::error_count(), errors_before + 1) << "the misaligned float2 load went unreported";
}

}  // namespace
}  // namespace simt_self_test
