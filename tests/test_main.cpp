#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
