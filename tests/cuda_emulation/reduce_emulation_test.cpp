// src/backend/cuda/reduce.cu run on the CPU (see softmax_ce_emulation_test.cpp for how): the real
// CudaBackend::reduce_sum (row sums, split column sums over a 3-D grid, an empty summed dim),
// argmax and topk (ties, NaN), scatter_add_rows against the CPU backend, under cuda_ops_test.cpp's
// tolerances (sums 1e-5 relative, 1e-5 absolute; argmax and topk exactly).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "emulation_util.hpp"

#define cuda_reduce ld_simt_cuda_reduce  // see softmax_ce_emulation_test.cpp
#include "backend/cuda/reduce.cu"

namespace ld::emulation_test {
namespace {

template <typename T>
void expect_equal(const T* got, const T* want, size_t n, const std::string& what) {
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; ++i)
    if (!(got[i] == want[i] || (std::isnan(double(got[i])) && std::isnan(double(want[i]))))) {
      if (bad++ == 0) first = i;
    }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << n << " differ; first at " << first << ": emulated "
                     << (bad ? got[first] : T()) << " vs cpu " << (bad ? want[first] : T());
}

TEST(CudaEmulationReduce, ReduceSumRowsSplitColumnsAndEmpty) {
  const EmulatedRun run{"reduce_sum"};
  // cuda_ops_test.cpp's shapes (outer x n x inner), plus column sums over outer > 1 (grid z) with a
  // partial last split (4 x 37 x 3: 3 splits of 13 rows), and an empty summed dim (fill).
  for (auto [outer, n, inner] : {std::tuple<int64_t, int64_t, int64_t>{3, 1000, 1}, {3, 1000, 17}, {1, 2000, 300},
                                 {5, 1, 7}, {4, 37, 3}, {2, 0, 5}}) {
    const std::string what =
        "reduce_sum " + std::to_string(outer) + "x" + std::to_string(n) + "x" + std::to_string(inner);
    const size_t size = size_t(outer * n * inner), out_size = size_t(outer * inner);
    Normal normal;
    std::vector<float> x(size);
    for (float& e : x) e = 1.0f + normal();  // a mean, so the sums do not cancel
    std::vector<float> want(out_size);
    cpu_backend().reduce_sum(outer, n, inner, x.data(), want.data());
    Mirror<float> xd(x);
    simt::DeviceBuffer<float> got(out_size);
    CudaBackend be;
    be.reduce_sum(outer, n, inner, xd.device.data(), got.data());
    expect_close(got.data(), want.data(), out_size, 1e-5, 1e-5, what);
  }
}

TEST(CudaEmulationReduce, ArgmaxAndTopkWithTiesAndNaN) {
  const EmulatedRun run{"argmax/topk"};
  const int64_t rows = 6, cols = 1000, k = 7;
  // as cuda_ops_test.cpp: values rounded to 0.25 so ties are common, two NaNs in row 2; row 4 all
  // equal (every pick a tie), row 5 -inf but one.
  Normal normal;
  std::vector<float> x(size_t(rows * cols));
  for (float& e : x) e = std::round(4.0f * normal()) / 4.0f;
  x[2 * cols + 500] = NAN;
  x[2 * cols + 600] = NAN;
  for (int64_t j = 0; j < cols; ++j) x[size_t(4 * cols + j)] = 0.5f, x[size_t(5 * cols + j)] = -INFINITY;
  x[5 * cols + 999] = -1.0f;
  Mirror<float> xd(x);
  CudaBackend be;

  std::vector<int64_t> am(rows);
  cpu_backend().argmax(rows, cols, x.data(), am.data());
  simt::DeviceBuffer<int64_t> amd(rows);
  be.argmax(rows, cols, xd.device.data(), amd.data());
  expect_equal(amd.data(), am.data(), size_t(rows), "argmax");

  const size_t nk = size_t(rows * k);
  std::vector<float> values(nk);
  std::vector<int64_t> indices(nk);
  cpu_backend().topk(rows, cols, k, x.data(), values.data(), indices.data());
  simt::DeviceBuffer<float> valuesd(nk);
  simt::DeviceBuffer<int64_t> indicesd(nk);
  be.topk(rows, cols, k, xd.device.data(), valuesd.data(), indicesd.data());
  expect_equal(valuesd.data(), values.data(), nk, "topk values");
  expect_equal(indicesd.data(), indices.data(), nk, "topk indices (ties: lower index first)");
}

TEST(CudaEmulationReduce, ScatterAddRowsWithRepeatedIndices) {
  const EmulatedRun run{"scatter_add_rows"};
  const int64_t rows = 3, cols = 10, k = 4;
  const std::vector<int64_t> index = {0, 3, 3, 9, 1, 1, 1, 0, 9, 9, 2, 5};
  Normal normal;
  std::vector<float> src(size_t(rows * k)), dst(size_t(rows * cols));
  for (float& e : src) e = normal();
  for (float& e : dst) e = normal();
  Mirror<int64_t> indexd(index);
  Mirror<float> srcd(src), dstd(dst);
  cpu_backend().scatter_add_rows(rows, cols, k, index.data(), src.data(), dst.data());
  CudaBackend be;
  be.scatter_add_rows(rows, cols, k, indexd.device.data(), srcd.device.data(), dstd.device.data());
  expect_close(dstd.device.data(), dst.data(), dst.size(), 1e-5, 1e-6, "scatter_add_rows (repeated indices)");
}

}  // namespace
}  // namespace ld::emulation_test
