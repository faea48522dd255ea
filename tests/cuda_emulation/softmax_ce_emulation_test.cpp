// src/backend/cuda/softmax_ce.cu run on the CPU: the file is #included below and compiled by the host
// compiler against the shim headers (shim/: cuda_runtime.h, and backend/cuda/cuda_backend.hpp, whose
// CudaBackend keeps only what the .cu's host code uses), so the real CudaBackend::softmax_forward/
// backward and cross_entropy_forward/backward run, their launches (LD_CUDA_LAUNCH) going to the
// emulator (simt.hpp). Outputs are compared with the CPU backend under the tolerances of
// tests/cuda/cuda_ops_test.cpp. Beyond what that GPU test covers, the logits rows here are further
// apart than the vocabulary in every dtype, with a -inf logit, and the padding columns must survive.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "core/dtype.hpp"
#include "emulation_util.hpp"

// The file's namespace renamed, so that its kernels and helpers (internal here, emulated) cannot meet
// the real ones a CUDA build's liandan_lib holds under the same names.
#define cuda_softmax ld_simt_cuda_softmax
#include "backend/cuda/softmax_ce.cu"

namespace ld::emulation_test {
namespace {

constexpr double kRtol = 1e-5;  // as cuda_ops_test.cpp

TEST(CudaEmulationSoftmaxCe, SoftmaxAndLogSoftmaxForwardBackward) {
  const EmulatedRun run{"softmax"};
  const int64_t rows = 5, cols = 700;  // not a multiple of the 256 threads
  const size_t n = size_t(rows * cols);
  Normal normal;
  std::vector<float> x(n), dy(n);
  for (float& e : x) e = 3.0f * normal();
  for (float& e : dy) e = normal();
  Mirror<float> xd(x), dyd(dy);
  for (bool log : {false, true}) {
    const std::string what = log ? "log_softmax" : "softmax";
    std::vector<float> y(n), dx(n);
    cpu_backend().softmax_forward(rows, cols, x.data(), y.data(), log);
    cpu_backend().softmax_backward(rows, cols, y.data(), dy.data(), dx.data(), log);
    simt::DeviceBuffer<float> yd(n), dxd(n);
    CudaBackend be;
    be.softmax_forward(rows, cols, xd.device.data(), yd.data(), log);
    be.softmax_backward(rows, cols, yd.data(), dyd.device.data(), dxd.data(), log);
    expect_close(yd.data(), y.data(), n, kRtol, 1e-6, what + " forward");
    expect_close(dxd.data(), dx.data(), n, kRtol, 1e-6, what + " backward");
  }
}

// Logits rows ld apart in dtype dt (f32, or bf16/f16 bits), targets of target_dtype with two
// ignored rows, one -inf logit; forward, then backward into a separate buffer or in place.
struct CeCase {
  DType dtype, target_dtype;
  int64_t ld;  // 0: vocab
  float smoothing;
  bool in_place;
};

std::string name(const CeCase& c) {
  return std::string(dtype_name(c.dtype)) + " targets " + std::string(dtype_name(c.target_dtype)) + " ld " +
         std::to_string(c.ld) +
         " smoothing " + std::to_string(c.smoothing) + (c.in_place ? " in place" : "");
}

void check_cross_entropy(const CeCase& c) {
  const int64_t rows = 7, vocab = 1003, ld = c.ld > 0 ? c.ld : vocab;
  const size_t n = size_t(rows * ld), elem = c.dtype == DType::f32 ? 4 : 2;
  Normal normal;
  std::vector<unsigned char> logits(n * elem);
  for (size_t i = 0; i < n; ++i) {
    float v = 2.0f * normal();
    if (i == size_t(ld + 5)) v = -INFINITY;  // a masked token in row 1
    if (c.dtype == DType::f32)
      std::memcpy(&logits[i * 4], &v, 4);
    else {
      const uint16_t h = c.dtype == DType::bf16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(&logits[i * 2], &h, 2);
    }
  }
  std::vector<int64_t> t64(rows);
  for (int64_t i = 0; i < rows; ++i) t64[size_t(i)] = (i * 977) % vocab;
  t64[2] = t64[5] = -100;
  std::vector<int32_t> t32(t64.begin(), t64.end());
  std::vector<float> dloss(rows);
  for (float& e : dloss) e = normal();

  Mirror<unsigned char> logits_d(logits);
  Mirror<int64_t> t64_d(t64);
  Mirror<int32_t> t32_d(t32);
  Mirror<float> dloss_d(dloss);
  CrossEntropyArgs a;
  a.rows = rows, a.vocab = vocab, a.ld = c.ld, a.logits_dtype = c.dtype, a.target_dtype = c.target_dtype;
  a.label_smoothing = c.smoothing;

  // CPU: dlogits into a copy of the logits (padding as it was), so both sides compare whole rows.
  std::vector<unsigned char> dlogits = logits;
  std::vector<float> loss(rows), lse(rows);
  a.logits = logits.data();
  a.targets = c.target_dtype == DType::i64 ? static_cast<const void*>(t64.data()) : t32.data();
  cpu_backend().cross_entropy_forward(a, loss.data(), lse.data());
  cpu_backend().cross_entropy_backward(a, lse.data(), dloss.data(), dlogits.data());

  simt::DeviceBuffer<float> loss_d(rows), lse_d(rows);
  Mirror<unsigned char> separate(logits);  // the padding's bytes, so an untouched pad compares equal
  void* dlogits_d = c.in_place ? static_cast<void*>(logits_d.device.data()) : separate.device.data();
  a.logits = logits_d.device.data();
  a.targets = c.target_dtype == DType::i64 ? static_cast<const void*>(t64_d.device.data()) : t32_d.device.data();
  CudaBackend be;
  be.cross_entropy_forward(a, loss_d.data(), lse_d.data());
  be.cross_entropy_backward(a, lse_d.data(), dloss_d.device.data(), dlogits_d);

  const std::string what = name(c);
  expect_close(loss_d.data(), loss.data(), rows, kRtol, 1e-6, "loss " + what);
  expect_close(lse_d.data(), lse.data(), rows, kRtol, 1e-6, "lse " + what);
  std::vector<float> got(n), want(n);
  const auto* g = static_cast<const unsigned char*>(dlogits_d);
  for (size_t i = 0; i < n; ++i) {
    if (c.dtype == DType::f32) {
      std::memcpy(&got[i], g + 4 * i, 4);
      std::memcpy(&want[i], &dlogits[4 * i], 4);
    } else {
      uint16_t hg, hw;
      std::memcpy(&hg, g + 2 * i, 2);
      std::memcpy(&hw, &dlogits[2 * i], 2);
      got[i] = c.dtype == DType::bf16 ? bf16_to_f32(hg) : f16_to_f32(hg);
      want[i] = c.dtype == DType::bf16 ? bf16_to_f32(hw) : f16_to_f32(hw);
    }
  }
  // as cuda_ops_test.cpp: f32 1e-5; bf16/f16 dlogits may round to a neighbour (expf's last bits)
  const double rtol = c.dtype == DType::bf16 ? 8e-3 : c.dtype == DType::f16 ? 1e-3 : kRtol;
  expect_close(got, want, rtol, 1e-6, "dlogits " + what);
}

TEST(CudaEmulationSoftmaxCe, CrossEntropyF32IgnoreIndexSmoothingI32I64Targets) {
  const EmulatedRun run{"cross_entropy f32"};
  for (DType target_dtype : {DType::i64, DType::i32})
    for (float smoothing : {0.0f, 0.1f}) check_cross_entropy({DType::f32, target_dtype, 0, smoothing, false});
  check_cross_entropy({DType::f32, DType::i64, 1010, 0.1f, false});  // rows further apart than the vocabulary
  check_cross_entropy({DType::f32, DType::i64, 1010, 0.0f, true});
}

TEST(CudaEmulationSoftmaxCe, CrossEntropyOnHalfLogitsWithPaddedRowsInPlace) {
  const EmulatedRun run{"cross_entropy bf16/f16"};
  for (DType dt : {DType::bf16, DType::f16})
    for (float smoothing : {0.0f, 0.1f}) check_cross_entropy({dt, DType::i64, 1010, smoothing, true});
  check_cross_entropy({DType::bf16, DType::i32, 1010, 0.1f, false});
  check_cross_entropy({DType::f16, DType::i64, 0, 0.0f, false});
}

}  // namespace
}  // namespace ld::emulation_test
