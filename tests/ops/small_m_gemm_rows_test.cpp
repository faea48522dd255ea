// cpu::small_m_gemm_rows: for chosen rows of W [n, k] (f32 and bf16), bit for bit what
// small_m_gemm(1, n, k, ...) gives those rows, for a few rows in any order (repeats too) and for
// enough rows to be split between the threads; k = 77 leaves a masked tail.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend/cpu/small_m_gemm.hpp"
#include "core/dtype.hpp"

namespace ld::cpu {
namespace {

template <typename W>
void expect_rows_match(const std::vector<W>& w, int64_t n, int64_t k, const std::vector<float>& x,
                       const std::vector<int32_t>& rows) {
  std::vector<float> full(static_cast<size_t>(n)), got(rows.size(), -1.0f);
  small_m_gemm(1, n, k, x.data(), k, w.data(), k, /*w_kn=*/false, full.data(), n, false);
  small_m_gemm_rows(k, x.data(), w.data(), k, rows.data(), int64_t(rows.size()), got.data());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(got[i], full[size_t(rows[i])]) << "row " << rows[i];
}

TEST(SmallMGemmRows, EqualTheFullProductBitForBit) {
  const int64_t n = 2000, k = 77;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n * k)), x(static_cast<size_t>(k));
  for (float& v : w) v = normal(rng);
  for (float& v : x) v = normal(rng);
  std::vector<uint16_t> h;
  for (float v : w) h.push_back(f32_to_bf16(v));
  const std::vector<int32_t> few{1999, 0, 17, 17, 1024, 3};
  std::vector<int32_t> all;  // 2000 rows of 77: past the threshold for two threads
  for (int32_t j = int32_t(n) - 1; j >= 0; --j) all.push_back(j);
  for (const std::vector<int32_t>* rows : {&few, static_cast<const std::vector<int32_t>*>(&all)}) {
    expect_rows_match(w, n, k, x, *rows);
    expect_rows_match(h, n, k, x, *rows);
  }
}

}  // namespace
}  // namespace ld::cpu
