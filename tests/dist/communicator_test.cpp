// Every Communicator operation against values computed on each rank by formula (the local
// communicator at 1 rank, MPI at 2 and 4).
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "dist/local_communicator.hpp"
#include "dist/world.hpp"

namespace ld::dist {
namespace {

float value_of(int rank, int64_t i) { return float(rank + 1) * 0.5f + float(i) * 0.25f; }

TEST(Communicator, AllReduceSumMaxMinOverEveryType) {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  std::vector<float> f(1000);
  for (size_t i = 0; i < f.size(); ++i) f[i] = value_of(r, int64_t(i));
  w.all_reduce(f.data(), int64_t(f.size()), ElemType::f32, ReduceOp::sum);
  for (size_t i = 0; i < f.size(); ++i) {
    float expected = 0;
    for (int k = 0; k < n; ++k) expected += value_of(k, int64_t(i));
    ASSERT_FLOAT_EQ(f[i], expected) << i;
  }
  std::vector<double> d = {double(r), -double(r)};
  w.all_reduce(d.data(), 1, ElemType::f64, ReduceOp::max);
  w.all_reduce(d.data() + 1, 1, ElemType::f64, ReduceOp::min);
  EXPECT_EQ(d[0], n - 1);
  EXPECT_EQ(d[1], -(n - 1));
  int64_t big = (int64_t(1) << 40) + r;
  w.all_reduce(&big, 1, ElemType::i64, ReduceOp::sum);
  EXPECT_EQ(big, n * (int64_t(1) << 40) + int64_t(n) * (n - 1) / 2);
  EXPECT_DOUBLE_EQ(w.all_reduce_sum(1.5), 1.5 * n);
}

TEST(Communicator, ReduceScatterGivesEachRankItsSummedBlock) {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  const int64_t count = 37;
  std::vector<float> in(size_t(count * n)), out(size_t(count), -1.0f);
  for (size_t i = 0; i < in.size(); ++i) in[i] = value_of(r, int64_t(i));
  w.reduce_scatter(in.data(), out.data(), count, ElemType::f32);
  for (int64_t i = 0; i < count; ++i) {
    float expected = 0;
    for (int k = 0; k < n; ++k) expected += value_of(k, r * count + i);
    ASSERT_FLOAT_EQ(out[size_t(i)], expected);
  }
}

TEST(Communicator, AllGatherConcatenatesTheRanksBlocksInRankOrder) {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  std::vector<int32_t> in = {r * 10, r * 10 + 1, r * 10 + 2}, out(size_t(3 * n), -1);
  w.all_gather(in.data(), out.data(), 3, ElemType::i32);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(out[size_t(k * 3 + j)], k * 10 + j);
}

TEST(Communicator, BroadcastFromTheLastRank) {
  Communicator& w = world();
  const int root = w.size() - 1;
  std::vector<double> data(5, double(w.rank()));
  w.broadcast(data.data(), 5, ElemType::f64, root);
  for (double v : data) EXPECT_EQ(v, root);
}

TEST(Communicator, RingExchangePostedTogetherDoesNotDeadlock) {
  Communicator& w = world();
  if (w.size() < 2) GTEST_SKIP() << "needs 2 ranks (runs under mpirun)";
  const int n = w.size(), r = w.rank();
  // Large enough that MPI cannot buffer it eagerly: a blocking send on both sides would deadlock.
  std::vector<float> out(1 << 20, float(r)), in(1 << 20, -1.0f);
  WorkPtr recv = w.recv_async(in.data(), int64_t(in.size()), ElemType::f32, (r + n - 1) % n, 7);
  WorkPtr send = w.send_async(out.data(), int64_t(out.size()), ElemType::f32, (r + 1) % n, 7);
  send->wait();
  recv->wait();
  EXPECT_EQ(in.front(), float((r + n - 1) % n));
  EXPECT_EQ(in.back(), float((r + n - 1) % n));
}

TEST(Communicator, AsyncReductionsCompleteInAnyWaitOrder) {
  Communicator& w = world();
  const int n = w.size();
  std::vector<std::vector<float>> buckets(4, std::vector<float>(100000));
  std::vector<WorkPtr> works;
  for (size_t b = 0; b < buckets.size(); ++b) {
    std::fill(buckets[b].begin(), buckets[b].end(), float(b + 1));
    works.push_back(w.all_reduce_async(buckets[b].data(), int64_t(buckets[b].size()), ElemType::f32, ReduceOp::sum));
  }
  for (size_t b = buckets.size(); b-- > 0;) works[b]->wait();
  for (size_t b = 0; b < buckets.size(); ++b) {
    EXPECT_EQ(buckets[b].front(), float((b + 1) * n));
    EXPECT_EQ(buckets[b].back(), float((b + 1) * n));
  }
}

TEST(Communicator, SplitFormsGroupsRankedByKey) {
  Communicator& w = world();
  const int r = w.rank(), n = w.size();
  // Even and odd ranks, each group ranked in reverse.
  std::unique_ptr<Communicator> group = w.split(r % 2, -r);
  const int group_size = (n + 1 - r % 2) / 2;
  EXPECT_EQ(group->size(), group_size);
  EXPECT_EQ(group->rank(), group_size - 1 - r / 2);
  double sum = group->all_reduce_sum(double(r));
  double expected = 0;
  for (int k = r % 2; k < n; k += 2) expected += k;
  EXPECT_EQ(sum, expected);
}

TEST(LocalCommunicator, CopiesForGathersAndRefusesTransfersToOtherRanks) {
  LocalCommunicator local;
  std::vector<float> in = {1, 2}, out(2);
  local.all_gather(in.data(), out.data(), 2, ElemType::f32);
  EXPECT_EQ(out, in);
  try {
    local.send(in.data(), 2, ElemType::f32, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one rank"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ld::dist
