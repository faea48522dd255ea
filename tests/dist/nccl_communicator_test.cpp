// The NCCL communicator (dist/nccl_communicator.hpp) against the host communicator it is bootstrapped
// from (MPI under mpirun, local at one rank): the same host data, copied to the GPU, run through NCCL
// and copied back, must equal the host communicator's result (whose own correctness
// communicator_test.cpp checks against formulas); and data-parallel gradient averaging
// (dist::DataParallel) over NCCL must equal the CPU's. Skips, saying why, in a build without NCCL,
// on a machine without a CUDA device, and with more ranks than devices (one GPU per rank).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "dist/world.hpp"

#ifdef LIANDAN_HAVE_NCCL
#include <cuda_runtime.h>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "dist/data_parallel.hpp"
#include "dist/nccl_communicator.hpp"
#include "io/hf_config.hpp"
#include "models/gpt2.hpp"
#include "ops/ops.hpp"
#include "dist/dist_fixture.hpp"
#include "test_util.hpp"
#include "train/objectives.hpp"
#endif

namespace ld::dist {
namespace {

#ifndef LIANDAN_HAVE_NCCL

TEST(NcclCommunicator, NeedsABuildWithNccl) {
  GTEST_SKIP() << "built without NCCL (LIANDAN_NCCL=OFF, or nccl.h/libnccl/CUDA/MPI not found)";
}

#else

void cuda_ok(cudaError_t code, const char* call) {
  LD_CHECK(code == cudaSuccess, call, " failed: ", cudaGetErrorString(code));
}

// Why these tests cannot run here, the same on every rank; "" when they can.
const std::string& skip_reason() {
  static const std::string reason = [] {
    const CudaDevices devices = cuda_devices();
    int fewest = devices.count;
    world().all_reduce(&fewest, 1, ElemType::i32, ReduceOp::min);
    if (fewest == 0)
      return "no CUDA device (" + (devices.problem.empty() ? "on another rank" : devices.problem) + ")";
    if (world().size() > fewest)
      return "needs a CUDA device per rank: " + std::to_string(world().size()) + " ranks, " +
             std::to_string(fewest) + " devices";
    return std::string();
  }();
  return reason;
}

// Device memory, freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { cuda_ok(cudaMalloc(&data_, bytes ? bytes : 1), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return data_; }
  void upload(const void* host) { cuda_ok(cudaMemcpy(data_, host, bytes_, cudaMemcpyHostToDevice), "cudaMemcpy H2D"); }
  void download(void* host) const { cuda_ok(cudaMemcpy(host, data_, bytes_, cudaMemcpyDeviceToHost), "cudaMemcpy D2H"); }

 private:
  void* data_ = nullptr;
  size_t bytes_;
};

// `host` copied to the device, changed there by `run`, copied back.
template <typename T>
std::vector<T> through_device(std::vector<T> host, const std::function<void(T*)>& run) {
  DeviceBuffer buffer(host.size() * sizeof(T));
  buffer.upload(host.data());
  run(static_cast<T*>(buffer.get()));
  buffer.download(host.data());
  return host;
}

// Different on every rank and element; quarters (floats) and small integers, so sums are exact in
// any order and a u8 sum over 4 ranks stays below 256.
template <typename T>
std::vector<T> rank_values(int rank, size_t n) {
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) {
    const int k = (rank * 7 + int(i) * 3) % 50;
    if constexpr (std::is_floating_point_v<T>) v[i] = T(k) * T(0.25) - T(5);
    else if constexpr (std::is_unsigned_v<T>) v[i] = T(k);
    else v[i] = T(k - 20);
  }
  return v;
}

template <typename T>
int mismatches(const std::vector<T>& got, const std::vector<T>& want) {
  if (got.size() != want.size()) return -1;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) bad += got[i] != want[i];
  return bad;
}

// A host-memory communicator whose collectives run on the GPU through NCCL (copy in, run, copy
// out), so DataParallel, which reduces host buckets, can average its gradients over NCCL.
class StagedNccl : public Communicator {
 public:
  StagedNccl(Communicator& nccl, int device) : nccl_(nccl), device_(device) {}
  int rank() const override { return nccl_.rank(); }
  int size() const override { return nccl_.size(); }
  std::string backend_name() const override { return "nccl"; }

  WorkPtr all_reduce_async(void* data, int64_t count, ElemType type, ReduceOp op) override {
    use_device();
    DeviceBuffer d(bytes(count, type));
    d.upload(data);
    nccl_.all_reduce(d.get(), count, type, op);
    d.download(data);
    return std::make_unique<DoneWork>();
  }
  WorkPtr reduce_scatter_async(const void* in, void* out, int64_t count, ElemType type, ReduceOp op) override {
    use_device();
    DeviceBuffer din(bytes(count * size(), type)), dout(bytes(count, type));
    din.upload(in);
    nccl_.reduce_scatter(din.get(), dout.get(), count, type, op);
    dout.download(out);
    return std::make_unique<DoneWork>();
  }
  WorkPtr all_gather_async(const void* in, void* out, int64_t count, ElemType type) override {
    use_device();
    DeviceBuffer din(bytes(count, type)), dout(bytes(count * size(), type));
    din.upload(in);
    nccl_.all_gather(din.get(), dout.get(), count, type);
    dout.download(out);
    return std::make_unique<DoneWork>();
  }
  WorkPtr broadcast_async(void* data, int64_t count, ElemType type, int root) override {
    use_device();
    DeviceBuffer d(bytes(count, type));
    d.upload(data);
    nccl_.broadcast(d.get(), count, type, root);
    d.download(data);
    return std::make_unique<DoneWork>();
  }
  WorkPtr send_async(const void*, int64_t, ElemType, int, int) override { LD_FAIL("StagedNccl: no send"); }
  WorkPtr recv_async(void*, int64_t, ElemType, int, int) override { LD_FAIL("StagedNccl: no recv"); }
  WorkPtr barrier_async() override {
    nccl_.barrier();
    return std::make_unique<DoneWork>();
  }
  std::unique_ptr<Communicator> split(int, int) override { LD_FAIL("StagedNccl: no split"); }

 private:
  static size_t bytes(int64_t count, ElemType type) { return size_t(count) * elem_size(type); }
  // DataParallel may call from autograd's threads, whose current device is 0.
  void use_device() const { cuda_ok(cudaSetDevice(device_), "cudaSetDevice"); }
  Communicator& nccl_;
  int device_;
};

// One NCCL communicator for the suite (creating one costs a rendezvous), on device = rank.
class NcclCommunicatorTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (skip_reason().empty()) comm_ = make_nccl_communicator(world(), world().rank());
  }
  static void TearDownTestSuite() { comm_.reset(); }
  void SetUp() override {
    if (!skip_reason().empty()) GTEST_SKIP() << skip_reason();
    ASSERT_TRUE(comm_) << "make_nccl_communicator failed";
  }
  static Communicator& nccl() { return *comm_; }

  static inline std::unique_ptr<Communicator> comm_;
};

// Runs everywhere (no device needed): every rank fails together, none waits for the unique id.
TEST(NcclCommunicatorErrors, AMissingDeviceIsOneClearErrorOnEveryRank) {
  const std::string message = test::error_message([] { make_nccl_communicator(world(), 99); });
  test::expect_mentions(message, {"NCCL communicator on rank", "CUDA"});
}

template <typename T>
int all_reduce_mismatches(ElemType type, ReduceOp op, Communicator& nccl) {
  const int64_t n = 1000;
  std::vector<T> want = rank_values<T>(world().rank(), size_t(n));
  const std::vector<T> got = through_device<T>(want, [&](T* d) { nccl.all_reduce(d, n, type, op); });
  world().all_reduce(want.data(), n, type, op);
  return mismatches(got, want);
}

TEST_F(NcclCommunicatorTest, IsNcclWithTheRanksOfItsBootstrap) {
  EXPECT_EQ(nccl().backend_name(), "nccl");
  EXPECT_EQ(nccl().rank(), world().rank());
  EXPECT_EQ(nccl().size(), world().size());
}

TEST_F(NcclCommunicatorTest, AllReduceEqualsTheHostCommunicatorForEveryTypeAndOp) {
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
    SCOPED_TRACE("op " + std::to_string(int(op)));
    EXPECT_EQ(all_reduce_mismatches<float>(ElemType::f32, op, nccl()), 0);
    EXPECT_EQ(all_reduce_mismatches<double>(ElemType::f64, op, nccl()), 0);
    EXPECT_EQ(all_reduce_mismatches<int32_t>(ElemType::i32, op, nccl()), 0);
    EXPECT_EQ(all_reduce_mismatches<int64_t>(ElemType::i64, op, nccl()), 0);
    EXPECT_EQ(all_reduce_mismatches<uint8_t>(ElemType::u8, op, nccl()), 0);
  }
}

TEST_F(NcclCommunicatorTest, ReduceScatterAllGatherAndBroadcastEqualTheHostCommunicator) {
  const int n = world().size(), r = world().rank();
  const int64_t count = 37;
  const std::vector<float> in = rank_values<float>(r, size_t(count * n));
  std::vector<float> want(static_cast<size_t>(count));
  world().reduce_scatter(in.data(), want.data(), count, ElemType::f32);
  std::vector<float> got(size_t(count), -1.0f);
  {
    DeviceBuffer din(in.size() * sizeof(float)), dout(got.size() * sizeof(float));
    din.upload(in.data());
    nccl().reduce_scatter(din.get(), dout.get(), count, ElemType::f32);
    dout.download(got.data());
  }
  EXPECT_EQ(mismatches(got, want), 0) << "reduce_scatter";

  const std::vector<int64_t> block = rank_values<int64_t>(r, 5);
  std::vector<int64_t> gathered_want(size_t(5 * n)), gathered(size_t(5 * n), -1);
  world().all_gather(block.data(), gathered_want.data(), 5, ElemType::i64);
  {
    DeviceBuffer din(block.size() * sizeof(int64_t)), dout(gathered.size() * sizeof(int64_t));
    din.upload(block.data());
    nccl().all_gather(din.get(), dout.get(), 5, ElemType::i64);
    dout.download(gathered.data());
  }
  EXPECT_EQ(mismatches(gathered, gathered_want), 0) << "all_gather";

  const int root = n - 1;
  std::vector<double> broadcast_want = rank_values<double>(r, 9);
  const std::vector<double> broadcast = through_device<double>(
      broadcast_want, [&](double* d) { nccl().broadcast(d, 9, ElemType::f64, root); });
  world().broadcast(broadcast_want.data(), 9, ElemType::f64, root);
  EXPECT_EQ(mismatches(broadcast, broadcast_want), 0) << "broadcast";
}

TEST_F(NcclCommunicatorTest, OperationsInFlightTogetherCompleteInAnyWaitOrder) {
  const int r = world().rank();
  const int64_t n = 1 << 16;
  std::vector<float> a = rank_values<float>(r, size_t(n)), b = rank_values<float>(r + 1, size_t(n));
  DeviceBuffer da(size_t(n) * 4), db(size_t(n) * 4);
  da.upload(a.data());
  db.upload(b.data());
  WorkPtr wa = nccl().all_reduce_async(da.get(), n, ElemType::f32, ReduceOp::sum);
  WorkPtr barrier = nccl().barrier_async();
  WorkPtr wb = nccl().all_reduce_async(db.get(), n, ElemType::f32, ReduceOp::max);
  wb->wait();
  barrier->wait();
  wa->wait();
  std::vector<float> got_a(a.size()), got_b(b.size());
  da.download(got_a.data());
  db.download(got_b.data());
  world().all_reduce(a.data(), n, ElemType::f32, ReduceOp::sum);
  world().all_reduce(b.data(), n, ElemType::f32, ReduceOp::max);
  EXPECT_EQ(mismatches(got_a, a), 0);
  EXPECT_EQ(mismatches(got_b, b), 0);
}

// Each rank receives from the one before and sends to the one after (itself at one rank), posting
// both before waiting: NCCL would deadlock on them issued one by one.
TEST_F(NcclCommunicatorTest, RingExchangePostedTogetherDoesNotDeadlock) {
  const int n = world().size(), r = world().rank();
  const int64_t count = 1 << 20;
  const int prev = (r + n - 1) % n, next = (r + 1) % n;
  const std::vector<float> out = rank_values<float>(r, size_t(count));
  DeviceBuffer dout(size_t(count) * 4), din(size_t(count) * 4), dsum(4);
  dout.upload(out.data());
  std::vector<float> got(static_cast<size_t>(count));
  // Waited on directly.
  WorkPtr recv = nccl().recv_async(din.get(), count, ElemType::f32, prev, 0);
  WorkPtr send = nccl().send_async(dout.get(), count, ElemType::f32, next, 0);
  send->wait();
  recv->wait();
  din.download(got.data());
  EXPECT_EQ(mismatches(got, rank_values<float>(prev, size_t(count))), 0) << "first exchange";
  // Issued by the collective that follows them.
  cuda_ok(cudaMemset(din.get(), 0, size_t(count) * 4), "cudaMemset");
  const float one = 1.0f;
  dsum.upload(&one);
  recv = nccl().recv_async(din.get(), count, ElemType::f32, prev, 0);
  send = nccl().send_async(dout.get(), count, ElemType::f32, next, 0);
  nccl().all_reduce(dsum.get(), 1, ElemType::f32);
  recv->wait();
  send->wait();
  float ranks = 0;
  dsum.download(&ranks);
  din.download(got.data());
  EXPECT_EQ(ranks, float(n));
  EXPECT_EQ(mismatches(got, rank_values<float>(prev, size_t(count))), 0) << "exchange before a collective";
}

TEST_F(NcclCommunicatorTest, SplitMatchesTheHostCommunicatorsSplit) {
  const int r = world().rank();
  const int color = r % 2, key = world().size() - r;  // reversed rank order within each color
  std::unique_ptr<Communicator> sub = nccl().split(color, key);
  std::unique_ptr<Communicator> host_sub = world().split(color, key);
  EXPECT_EQ(sub->backend_name(), "nccl");
  EXPECT_EQ(sub->rank(), host_sub->rank());
  EXPECT_EQ(sub->size(), host_sub->size());
  std::vector<int32_t> want = rank_values<int32_t>(r, 100);
  const std::vector<int32_t> got =
      through_device<int32_t>(want, [&](int32_t* d) { sub->all_reduce(d, 100, ElemType::i32); });
  host_sub->all_reduce(want.data(), 100, ElemType::i32);
  EXPECT_EQ(mismatches(got, want), 0);
  sub->barrier();
}

TEST_F(NcclCommunicatorTest, HostBuffersAndBadRanksAreClearErrors) {
  std::vector<float> host(8, 1.0f);
  test::expect_mentions(test::error_message([&] { nccl().all_reduce(host.data(), 8, ElemType::f32); }),
                        {"NCCL all_reduce", "not CUDA device memory"});
  DeviceBuffer d(32);
  test::expect_mentions(
      test::error_message([&] { nccl().send(d.get(), 8, ElemType::f32, nccl().size(), 0); }),
      {"NCCL send destination", "is not a rank"});
  nccl().barrier();  // still usable
}

// --- data-parallel gradient averaging over NCCL (through StagedNccl) against the CPU's

Tensor ids_for(int rank, uint64_t salt) {
  std::mt19937_64 rng(1000 + uint64_t(rank) * 10 + salt);
  std::vector<int64_t> ids(16);
  for (auto& id : ids) id = int64_t(rng() % 64);
  return from_vector(ids, {2, 8});
}

// This rank's averaged gradient segments (flattened, in segments() order) after one step of
// DataParallel over `comm`, then the full parameters after a plain SGD step on the segments (which
// ZeRO stages 1 and 2 all-gather into every rank).
std::vector<float> data_parallel_step(Communicator& comm, int zero) {
  Generator gen(21);
  models::Gpt2LMHeadModel model(io::make_hf_config(fixture::tiny_stack(), true), gen);
  const auto named = model.named_parameters();
  DataParallel dp(comm, named, DataParallelOptions{.zero_stage = zero, .bucket_bytes = 8192});
  dp.start_step();
  dp.begin_micro_batch(true);
  train::clm_loss(model, ids_for(comm.rank(), 0), ids_for(comm.rank(), 1)).loss.backward();
  dp.finish_backward();
  std::vector<float> result;
  {
    autograd::NoGradGuard no_grad;
    for (const Segment& s : dp.segments()) {
      const std::vector<float> g = s.part.grad().contiguous().to_vector<float>();
      result.insert(result.end(), g.begin(), g.end());
      Tensor(s.part).copy_(ops::sub(s.part, ops::scale(s.part.grad(), 0.1)));
    }
  }
  dp.finish_step();
  for (const auto& [name, p] : named) {
    const std::vector<float> v = p.contiguous().to_vector<float>();
    result.insert(result.end(), v.begin(), v.end());
  }
  return result;
}

float worst_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return 1e30f;
  float worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), 1e-3f));
  return worst;
}

TEST_F(NcclCommunicatorTest, DataParallelGradientAveragingEqualsTheCpus) {
  StagedNccl staged(nccl(), world().rank());
  for (int zero : {0, 1, 2}) {
    SCOPED_TRACE("ZeRO stage " + std::to_string(zero));
    const std::vector<float> over_nccl = data_parallel_step(staged, zero);
    const std::vector<float> on_cpu = data_parallel_step(world(), zero);
    EXPECT_FALSE(over_nccl.empty());
    // Sums of the same values; NCCL may add them in another order (0 difference at 1 or 2 ranks).
    EXPECT_LE(worst_relative_error(over_nccl, on_cpu), 1e-5f);
  }
}

#endif  // LIANDAN_HAVE_NCCL

}  // namespace
}  // namespace ld::dist
