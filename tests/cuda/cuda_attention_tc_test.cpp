// The tensor-core attention path (src/backend/cuda/attention_tc.cu, AttentionArgs::allow_bf16)
// against the CPU backend's f32 attention. bf16 operands make elementwise tolerances meaningless
// near zero, so each output is judged by its relative Frobenius error ||gpu - cpu|| / ||cpu||
// (1e-2 for out and lse, 3e-2 for the gradients, whose dS = P (dP - delta) cancels); infinities
// (lse of queries that see no key) must match exactly. Each case also checks that the path really
// rounded (it differs from the device's own f32 kernel), and that other head dims keep the f32
// kernel's results. Without a GPU every test here skips, saying so.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "attention_test_args.hpp"
#include "cuda_test_util.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"

namespace ld::test {
namespace {

constexpr double kOutTol = 1e-2, kGradTol = 3e-2;

struct Case {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal, strided_q = false, mask = false;
};

std::string describe(const Case& c) {
  return "B=" + std::to_string(c.batch) + " Hq=" + std::to_string(c.q_heads) + " Hkv=" + std::to_string(c.kv_heads) +
         " Tq=" + std::to_string(c.q_len) + " Tk=" + std::to_string(c.kv_len) + " D=" + std::to_string(c.head_dim) +
         " causal=" + std::to_string(c.causal) + (c.strided_q ? " strided q" : "") + (c.mask ? " masked" : "");
}

// ||got - want|| / ||want|| over the finite entries of want; infinite ones must be equal in got.
// Returns infinity when they are not (or when got has a NaN).
double relative_error(const Tensor& got, const Tensor& want) {
  const std::vector<float> g = got.to(kCPU).contiguous().to_vector<float>(), w = want.contiguous().to_vector<float>();
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < w.size(); ++i) {
    if (std::isinf(w[i])) {
      if (g[i] != w[i]) return INFINITY;
      continue;
    }
    if (std::isnan(g[i])) return INFINITY;
    diff += (double(g[i]) - w[i]) * (double(g[i]) - w[i]);
    norm += double(w[i]) * w[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

struct Inputs {
  Tensor q, k, v, dout, mask;
};
struct Results {
  Tensor out, lse, dq, dk, dv;
};

Inputs make_inputs(Generator& gen, const Case& c) {
  const int64_t B = c.batch, Hq = c.q_heads, Hk = c.kv_heads, Tq = c.q_len, Tk = c.kv_len, D = c.head_dim;
  Inputs in;
  in.q = c.strided_q ? randn({B, Tq, Hq, D}, &gen) : randn({B, Hq, Tq, D}, &gen);  // strided: [B, T, H, D] memory
  in.k = randn({B, Hk, Tk, D}, &gen);
  in.v = randn({B, Hk, Tk, D}, &gen);
  in.dout = randn({B, Hq, Tq, D}, &gen);
  if (c.mask) {  // additive N(0, 1), the last batch's last 5 keys padded, batch 0's third query sees nothing
    std::vector<float> m = randn({B, 1, Tq, Tk}, &gen).to_vector<float>();
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = std::max<int64_t>(0, Tk - 5); j < Tk; ++j) m[size_t(((B - 1) * Tq + i) * Tk + j)] = -INFINITY;
    if (Tq > 2)
      for (int64_t j = 0; j < Tk; ++j) m[size_t(2 * Tk + j)] = -INFINITY;
    in.mask = from_vector(m, {B, 1, Tq, Tk});
  }
  return in;
}

// Forward and backward through the backend of `device` (inputs copied there), allow_bf16 as given.
Results run(const Case& c, const Inputs& host, Device device, bool allow_bf16) {
  const int64_t B = c.batch, Hq = c.q_heads, Hk = c.kv_heads, Tq = c.q_len, Tk = c.kv_len, D = c.head_dim;
  auto place = [&](const Tensor& t) { return t.defined() ? t.contiguous().to(device) : Tensor(); };
  const Tensor q = place(host.q), k = place(host.k), v = place(host.v), dout = place(host.dout);
  const Tensor mask = place(host.mask);
  Results r{zeros({B, Hq, Tq, D}, DType::f32, device), zeros({B, Hq, Tq}, DType::f32, device),
            zeros({B, Hq, Tq, D}, DType::f32, device), zeros({B, Hk, Tk, D}, DType::f32, device),
            zeros({B, Hk, Tk, D}, DType::f32, device)};
  AttentionArgs a = attention_test_args(B, Hq, Hk, Tq, Tk, D, c.causal, c.strided_q, c.mask ? mask.data<float>() : nullptr);
  a.allow_bf16 = allow_bf16;
  Backend& be = backend_for(device);
  be.attention_forward(a, q.data<float>(), k.data<float>(), v.data<float>(), r.out.data<float>(), r.lse.data<float>());
  be.attention_backward(a, q.data<float>(), k.data<float>(), v.data<float>(), r.out.data<float>(),
                        dout.data<float>(), r.lse.data<float>(), r.dq.data<float>(), r.dk.data<float>(),
                        r.dv.data<float>());
  be.synchronize();
  return r;
}

std::vector<Tensor> fields(const Results& r) { return {r.out, r.lse, r.dq, r.dk, r.dv}; }
const char* const kNames[] = {"out", "lse", "dq", "dk", "dv"};

// The tensor-core path within bf16 tolerance of the CPU, and visibly not the f32 kernel.
void check_tensor_cores(Generator& gen, const Case& c) {
  const Inputs in = make_inputs(gen, c);
  const Results want = run(c, in, kCPU, false), tc = run(c, in, kGPU, true), f32 = run(c, in, kGPU, false);
  const std::vector<Tensor> w = fields(want), got = fields(tc), exact = fields(f32);
  double max_rounding = 0.0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double err = relative_error(got[i], w[i]), tol = i < 2 ? kOutTol : kGradTol;
    EXPECT_LE(err, tol) << describe(c) << " " << kNames[i] << ": relative error " << err;
    std::printf("[ tc attn  ] %s %s: relative error %.2e (f32 kernel %.2e)\n", describe(c).c_str(), kNames[i], err,
                relative_error(exact[i], w[i]));
    max_rounding = std::max(max_rounding, relative_error(got[i], exact[i]));
  }
  EXPECT_GT(max_rounding, 1e-4) << describe(c) << ": the f32 kernel's result: the tensor-core path did not run";
}

TEST_F(CudaTest, AttentionTensorCoresMatchCpuWithinBf16Tolerance) {
  const Case cases[] = {
      {2, 4, 1, 100, 100, 64, true},          // GQA 4:1, T not a multiple of the 64-query/key tiles
      {2, 4, 1, 100, 100, 64, false},
      {1, 8, 2, 77, 77, 128, true},
      {2, 4, 1, 45, 45, 128, false},
      {1, 4, 1, 30, 130, 64, true, true},     // fewer queries than keys (a cache), q in [B, T, H, D] memory
      {1, 4, 1, 70, 20, 64, true},            // more queries than keys: the first 50 see nothing (lse -inf)
      {2, 3, 3, 130, 130, 128, true, true},   // no grouping, strided q, three key tiles of the backward
      {1, 2, 1, 1, 37, 64, true},             // a decode step
      {2, 4, 2, 100, 100, 64, true, false, true},    // additive mask with padded keys and a row that sees nothing
      {2, 4, 4, 70, 70, 128, false, false, true},    // a padding mask without the causal cut
      {1, 4, 1, 30, 130, 64, true, true, true},      // masked, with a cache
  };
  for (const Case& c : cases) check_tensor_cores(gen, c);
}

// Unsupported arguments keep the f32 kernel (its own tolerance) even when bf16 is allowed.
TEST_F(CudaTest, AttentionAllowBf16FallsBackForOtherHeadDims) {
  const Case cases[] = {{1, 2, 1, 33, 33, 80, true}, {1, 4, 2, 40, 40, 96, true, false, true}};
  for (const Case& c : cases) {
    const Inputs in = make_inputs(gen, c);
    const std::vector<Tensor> want = fields(run(c, in, kCPU, false)), got = fields(run(c, in, kGPU, true));
    for (size_t i = 0; i < want.size(); ++i)
      expect_close(got[i], want[i], 1e-4, 1e-5, describe(c) + " " + kNames[i]);
  }
}

// ops::attention sets allow_bf16 from the autocast scope: on the device it then rounds, and stays
// within bf16 tolerance of the CPU (which ignores the flag) through autograd.
TEST_F(CudaTest, AttentionOpUsesTensorCoresUnderBf16Autocast) {
  Tensor q = randn({2, 4, 65, 64}, &gen), k = randn({2, 2, 65, 64}, &gen), v = randn({2, 2, 65, 64}, &gen);
  auto forward_backward = [&](Device device, bool autocast) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : {q, k, v}) {
      leaves.push_back(t.detach().to(device).contiguous());
      leaves.back().set_requires_grad(true);
    }
    std::vector<Tensor> results;
    {
      ops::AutocastScope scope(autocast ? ComputePrecision::bf16 : ComputePrecision::f32);
      Tensor out = ops::attention(leaves[0], leaves[1], leaves[2]);
      ops::sum(ops::mul(out, out)).backward();
      results.push_back(out.detach());
    }
    for (const Tensor& leaf : leaves) results.push_back(leaf.grad());
    return results;
  };
  const std::vector<Tensor> cpu = forward_backward(kCPU, true), tc = forward_backward(kGPU, true),
                            f32 = forward_backward(kGPU, false);
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (size_t i = 0; i < cpu.size(); ++i)
    EXPECT_LE(relative_error(tc[i], cpu[i]), i == 0 ? kOutTol : kGradTol) << names[i];
  EXPECT_GT(relative_error(tc[0], f32[0]), 1e-4) << "bf16 autocast did not reach the attention kernel";
}

}  // namespace
}  // namespace ld::test
