// The caching device allocator's size classes (host-only arithmetic: runs without a GPU). Reuse
// of freed blocks needs a device: cuda_ops_test.cpp checks it there.
#include <gtest/gtest.h>

#include "backend/cuda/device_allocator.hpp"

namespace ld::cuda {
namespace {

TEST(CudaAllocator, SizesRoundTo512BytesBelow1MiBAnd2MiBAbove) {
  EXPECT_EQ(DeviceAllocator::rounded_size(0), 512u);  // an empty tensor still gets a distinct block
  EXPECT_EQ(DeviceAllocator::rounded_size(1), 512u);
  EXPECT_EQ(DeviceAllocator::rounded_size(512), 512u);
  EXPECT_EQ(DeviceAllocator::rounded_size(513), 1024u);
  EXPECT_EQ(DeviceAllocator::rounded_size((1u << 20) - 1), 1u << 20);
  EXPECT_EQ(DeviceAllocator::rounded_size(1u << 20), 2u << 20);
  EXPECT_EQ(DeviceAllocator::rounded_size((2u << 20) + 1), 4u << 20);
  EXPECT_EQ(DeviceAllocator::rounded_size(size_t(3) << 30), size_t(3) << 30);
}

}  // namespace
}  // namespace ld::cuda
