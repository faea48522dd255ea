#include <gtest/gtest.h>

#include "core/tensor.hpp"
#include "ops/ops.hpp"

using namespace ld;

TEST(Tensor, ViewsShareStorageAndReportStrides) {
  Tensor t = arange(24, DType::f32).reshape({2, 3, 4});
  EXPECT_TRUE(t.is_contiguous());
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.storage(), t.storage());
  Tensor c = p.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  std::vector<float> v = c.to_vector();
  // c[i][j][k] = t[j][k][i] = 12j + 4k + i
  EXPECT_FLOAT_EQ(v[0 * 6 + 1 * 3 + 2], 12 * 1 + 4 * 2 + 0);
  EXPECT_FLOAT_EQ(v[3 * 6 + 0 * 3 + 1], 0 + 4 * 1 + 3);
}
