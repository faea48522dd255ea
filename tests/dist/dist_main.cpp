// The distributed tests' main: every rank runs every test; dist::init opens MPI under mpirun.
// Only rank 0 prints GoogleTest's progress, but a failure on any rank fails the run (its exit code).
#include <gtest/gtest.h>

#include "dist/world.hpp"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  ld::dist::init(&argc, &argv);
  if (!ld::dist::is_main_rank()) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  // A rank whose test failed may have skipped collectives the others wait in: end the job rather
  // than hang in finalize.
  int any_failed = failed;
  ld::dist::world().all_reduce(&any_failed, 1, ld::dist::ElemType::i32, ld::dist::ReduceOp::max);
  ld::dist::finalize();
  return any_failed ? 1 : 0;
}
