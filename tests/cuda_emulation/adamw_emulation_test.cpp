// src/backend/cuda/adamw.cu run on the CPU (see softmax_ce_emulation_test.cpp for how): the real
// CudaBackend::adamw_step over more buffers than one launch carries (kBuffersPerLaunch = 36), with an
// empty buffer among them, two buffers of more than one thread block (kChunk = 65536 elements) in
// different launches, per-buffer hyperparameters and bf16 working copies (none, nearest, stochastic),
// against the CPU backend's adamw_step; and CudaBackend::round_bf16 against the CPU's bit for bit.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "emulation_util.hpp"

#include "backend/cuda/adamw.cu"  // its helpers sit in an anonymous namespace: internal here already

namespace ld::emulation_test {
namespace {

// rounding_key 0 rounds to nearest; the stochastic keys and counters differ per buffer, one counter
// so close to 2^32 that the buffer's draws carry into the counter's high word.
constexpr uint64_t kStochasticKey = 0x9e3779b97f4a7c15ull;

void expect_bits_equal(const uint16_t* got, const uint16_t* want, size_t n, const std::string& what) {
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; ++i)
    if (got[i] != want[i]) {
      if (bad++ == 0) first = i;
    }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << n << " bf16 values differ; first at " << first
                     << ": emulated 0x" << std::hex << (bad ? got[first] : 0) << " vs cpu 0x"
                     << (bad ? want[first] : 0);
}

TEST(CudaEmulationAdamW, ManyBuffersTwoLaunchesWithBf16WorkingCopies) {
  const EmulatedRun run{"adamw_step"};
  // 41 buffers (two launches); index 3 empty; index 5 (first launch) and 38 (second) span two blocks.
  std::vector<int64_t> sizes;
  for (int b = 0; b < 41; ++b) sizes.push_back(b == 3 ? 0 : b == 5 ? 70001 : b == 38 ? 65537 : 1 + (b * 397) % 1500);
  const size_t count = sizes.size();
  Normal normal;
  struct Buffer {
    std::vector<float> p, g, m, v;
  };
  std::vector<Buffer> host(count);
  for (size_t b = 0; b < count; ++b) {
    const size_t n = size_t(sizes[b]);
    Buffer& h = host[b];
    h.p.resize(n), h.g.resize(n), h.m.resize(n), h.v.resize(n);
    for (size_t i = 0; i < n; ++i) {
      h.p[i] = normal();
      h.g[i] = 0.5f * normal();
      h.m[i] = 0.1f * normal();
      h.v[i] = 0.01f * std::abs(normal());
    }
  }
  // Device copies (params, moments updated in place; deques: buffers do not move), and the CPU's.
  std::deque<Mirror<float>> pd, gd, md, vd;
  std::deque<simt::DeviceBuffer<uint16_t>> p16d;
  std::vector<std::vector<float>> pc, mc, vc;
  std::vector<std::vector<uint16_t>> p16c;
  for (size_t b = 0; b < count; ++b) {
    pd.emplace_back(host[b].p), gd.emplace_back(host[b].g), md.emplace_back(host[b].m), vd.emplace_back(host[b].v);
    p16d.emplace_back(sizes[b] > 0 ? size_t(sizes[b]) : 1);
    pc.push_back(host[b].p), mc.push_back(host[b].m), vc.push_back(host[b].v);
    p16c.emplace_back(size_t(sizes[b]));
  }
  std::vector<AdamWArgs> dev(count), cpu(count);
  for (size_t b = 0; b < count; ++b) {
    AdamWArgs a;
    a.n = sizes[b];
    a.lr = 1e-3f * float(1 + b % 5);
    a.beta1 = b % 2 ? 0.9f : 0.8f;
    a.beta2 = b % 3 ? 0.999f : 0.95f;
    a.eps = b % 4 ? 1e-8f : 1e-6f;
    a.weight_decay = b % 3 == 1 ? 0.1f : 0.0f;
    a.grad_scale = b % 7 == 2 ? 0.25f : 1.0f;
    a.step = int64_t(1 + (b * 37) % 1000);
    const int copy = int(b % 3);  // 0: no working copy, 1: nearest, 2: stochastic
    a.rounding_key = copy == 2 ? kStochasticKey + b : 0;
    a.rounding_counter = b == 38 ? 0xfffffff0ull : 1000 * b;
    dev[b] = cpu[b] = a;
    if (a.n == 0) continue;
    dev[b].param = pd[b].device.data(), dev[b].grad = gd[b].device.data();
    dev[b].m = md[b].device.data(), dev[b].v = vd[b].device.data();
    dev[b].param_bf16 = copy > 0 ? p16d[b].data() : nullptr;
    cpu[b].param = pc[b].data(), cpu[b].grad = host[b].g.data(), cpu[b].m = mc[b].data(), cpu[b].v = vc[b].data();
    cpu[b].param_bf16 = copy > 0 ? p16c[b].data() : nullptr;
  }
  ASSERT_EQ(dev[38].rounding_key, kStochasticKey + 38);  // the high-word carry buffer rounds stochastically
  cpu_backend().adamw_step(cpu);
  CudaBackend be;
  be.adamw_step(dev);

  for (size_t b = 0; b < count; ++b) {
    const size_t n = size_t(sizes[b]);
    const std::string what = "buffer " + std::to_string(b) + " (n " + std::to_string(n) + ")";
    // Same constants on both sides; the device's sqrtf may differ from std::sqrt in the last bit.
    expect_close(pd[b].device.data(), pc[b].data(), n, 1e-6, 0.0, "param " + what);
    expect_close(md[b].device.data(), mc[b].data(), n, 1e-6, 0.0, "m " + what);
    expect_close(vd[b].device.data(), vc[b].data(), n, 1e-6, 0.0, "v " + what);
    if (dev[b].param_bf16 == nullptr) continue;
    // The working copy: exactly round_bf16 of the updated (emulated) param, same key and counter.
    std::vector<uint16_t> want(n);
    cpu_backend().round_bf16(int64_t(n), pd[b].device.data(), want.data(), dev[b].rounding_key,
                             dev[b].rounding_counter);
    expect_bits_equal(p16d[b].data(), want.data(), n, "param_bf16 " + what);
  }
}

TEST(CudaEmulationAdamW, RoundBf16NearestAndStochasticMatchCpuBits) {
  const EmulatedRun run{"round_bf16"};
  const int64_t n = 3001;  // odd: a partial last Philox group and a partial last block
  Normal normal;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& e : x) e = 10.0f * normal();
  x[7] = NAN, x[8] = INFINITY, x[9] = -INFINITY, x[10] = 0.0f, x[11] = -0.0f;
  x[12] = 1.00390625f;  // exactly halfway between two bf16 values (ties to even)
  x[13] = 3.4e38f;      // rounds up to inf
  Mirror<float> xd(x);
  CudaBackend be;
  for (uint64_t key : {uint64_t(0), kStochasticKey}) {
    for (uint64_t counter : {uint64_t(0), uint64_t(12345)}) {
      const std::string what = "key " + std::to_string(key) + " counter " + std::to_string(counter);
      std::vector<uint16_t> want(static_cast<size_t>(n));
      cpu_backend().round_bf16(n, x.data(), want.data(), key, counter);
      simt::DeviceBuffer<uint16_t> yd(static_cast<size_t>(n));
      be.round_bf16(n, xd.device.data(), yd.data(), key, counter);
      expect_bits_equal(yd.data(), want.data(), size_t(n), "round_bf16 " + what);
    }
  }
  be.round_bf16(0, nullptr, nullptr, kStochasticKey, 0);  // n = 0: no launch
}

}  // namespace
}  // namespace ld::emulation_test
