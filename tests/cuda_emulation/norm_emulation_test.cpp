// src/backend/cuda/norm.cu run on the CPU (see softmax_ce_emulation_test.cpp for how): the real
// CudaBackend::layernorm/rmsnorm forward (with and without the fused residual) and backward (dx per
// row, dw/db as split column sums in double over a 2-D grid) against the CPU backend, under
// cuda_ops_test.cpp's tolerances (1e-5 relative, 1e-5 absolute).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "emulation_util.hpp"

#define cuda_norm ld_simt_cuda_norm  // see softmax_ce_emulation_test.cpp
#include "backend/cuda/norm.cu"

namespace ld::emulation_test {
namespace {

// rows x cols with x around 3 (a mean to subtract); 67 x 300: one block per row with cols not a
// multiple of 256 threads, and two column blocks; 100 x 64: several row splits for dw/db.
const std::pair<int64_t, int64_t> kShapes[] = {{67, 300}, {100, 64}};

TEST(CudaEmulationNorm, LayerNormAndRmsNormForwardBackwardWithResidual) {
  const EmulatedRun run{"layernorm/rmsnorm"};
  for (auto [rows, cols] : kShapes) {
    const size_t n = size_t(rows * cols), c = size_t(cols), r = size_t(rows);
    Normal normal;
    std::vector<float> x(n), res(n), w(c), b(c), dy(n);
    for (float& e : x) e = 3.0f + normal();
    for (std::vector<float>* v : {&res, &w, &b, &dy})
      for (float& e : *v) e = normal();
    Mirror<float> xd(x), resd(res), wd(w), bd(b), dyd(dy);
    for (bool residual : {false, true}) {
      const std::string what = "rows=" + std::to_string(rows) + " residual=" + std::to_string(residual);
      CudaBackend be;
      {  // layernorm
        std::vector<float> sum(n), y(n), mean(r), rstd(r), dx(n), dw(c), db(c);
        cpu_backend().layernorm_forward(rows, cols, x.data(), residual ? res.data() : nullptr, w.data(), b.data(),
                                        1e-5f, sum.data(), y.data(), mean.data(), rstd.data());
        cpu_backend().layernorm_backward(rows, cols, dy.data(), residual ? sum.data() : x.data(), w.data(),
                                         mean.data(), rstd.data(), dx.data(), dw.data(), db.data());
        simt::DeviceBuffer<float> sumd(n), yd(n), meand(r), rstdd(r), dxd(n), dwd(c), dbd(c);
        be.layernorm_forward(rows, cols, xd.device.data(), residual ? resd.device.data() : nullptr, wd.device.data(),
                             bd.device.data(), 1e-5f, sumd.data(), yd.data(), meand.data(), rstdd.data());
        be.layernorm_backward(rows, cols, dyd.device.data(), residual ? sumd.data() : xd.device.data(),
                              wd.device.data(), meand.data(), rstdd.data(), dxd.data(), dwd.data(), dbd.data());
        if (residual) expect_close(sumd.data(), sum.data(), n, 1e-5, 1e-5, "layernorm sum " + what);
        expect_close(yd.data(), y.data(), n, 1e-5, 1e-5, "layernorm y " + what);
        expect_close(meand.data(), mean.data(), r, 1e-5, 1e-5, "layernorm mean " + what);
        expect_close(rstdd.data(), rstd.data(), r, 1e-5, 1e-5, "layernorm rstd " + what);
        expect_close(dxd.data(), dx.data(), n, 1e-5, 1e-5, "layernorm dx " + what);
        expect_close(dwd.data(), dw.data(), c, 1e-5, 1e-5, "layernorm dw " + what);
        expect_close(dbd.data(), db.data(), c, 1e-5, 1e-5, "layernorm db " + what);
      }
      {  // rmsnorm
        std::vector<float> sum(n), y(n), rstd(r), dx(n), dw(c);
        cpu_backend().rmsnorm_forward(rows, cols, x.data(), residual ? res.data() : nullptr, w.data(), 1e-6f,
                                      sum.data(), y.data(), rstd.data());
        cpu_backend().rmsnorm_backward(rows, cols, dy.data(), residual ? sum.data() : x.data(), w.data(), rstd.data(),
                                       dx.data(), dw.data());
        simt::DeviceBuffer<float> sumd(n), yd(n), rstdd(r), dxd(n), dwd(c);
        be.rmsnorm_forward(rows, cols, xd.device.data(), residual ? resd.device.data() : nullptr, wd.device.data(),
                           1e-6f, sumd.data(), yd.data(), rstdd.data());
        be.rmsnorm_backward(rows, cols, dyd.device.data(), residual ? sumd.data() : xd.device.data(),
                            wd.device.data(), rstdd.data(), dxd.data(), dwd.data());
        if (residual) expect_close(sumd.data(), sum.data(), n, 1e-5, 1e-5, "rmsnorm sum " + what);
        expect_close(yd.data(), y.data(), n, 1e-5, 1e-5, "rmsnorm y " + what);
        expect_close(rstdd.data(), rstd.data(), r, 1e-5, 1e-5, "rmsnorm rstd " + what);
        expect_close(dxd.data(), dx.data(), n, 1e-5, 1e-5, "rmsnorm dx " + what);
        expect_close(dwd.data(), dw.data(), c, 1e-5, 1e-5, "rmsnorm dw " + what);
      }
    }
  }
}

}  // namespace
}  // namespace ld::emulation_test
