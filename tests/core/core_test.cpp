// The core layer: Philox random numbers, 16-bit float conversions, the caching host allocator and
// tensor views / copies / host access.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/allocator.hpp"
#include "core/dtype.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

using namespace ld;

namespace {

// Runs f with the CPU kernels on `threads` threads, restoring the previous count.
template <typename F>
auto with_threads(int threads, F&& f) {
  int saved = num_threads();
  set_num_threads(threads);
  auto result = f();
  set_num_threads(saved);
  return result;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

// --- Philox-4x32-10

// Known-answer vectors of Random123's examples/kat_vectors ("philox4x32 10" lines): CTR (4 words),
// KEY (2 words), EXPECTED (4 words). Our philox4x32(key, counter_hi, counter_lo) packs
// counter = {lo32(counter_lo), hi32(counter_lo), lo32(counter_hi), hi32(counter_hi)} and
// key = {lo32(key), hi32(key)}.
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Kat {
    uint32_t ctr[4];
    uint32_t key[2];
    std::array<uint32_t, 4> want;
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    uint64_t counter_lo = uint64_t(k.ctr[0]) | uint64_t(k.ctr[1]) << 32;
    uint64_t counter_hi = uint64_t(k.ctr[2]) | uint64_t(k.ctr[3]) << 32;
    uint64_t key = uint64_t(k.key[0]) | uint64_t(k.key[1]) << 32;
    EXPECT_EQ(philox4x32(key, counter_hi, counter_lo), k.want) << std::hex << "ctr[0]=" << k.ctr[0];
  }
}

TEST(Philox, RandElementIIsLaneIMod4OfCounterOffsetPlusIDiv4) {
  Generator gen;
  gen.set_state(1234, 17);
  std::vector<float> v = rand({11}, &gen).to_vector();
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(v[i], uint_to_unit_float(philox4x32(1234, 0, 17 + i / 4)[i % 4])) << "element " << i;
  EXPECT_EQ(gen.offset(), 17u + 3u);  // ceil(11 / 4) counters consumed
}

TEST(Philox, RandomTensorsDoNotDependOnTheThreadCount) {
  const int64_t n = (1 << 16) + 3;  // above the kernels' parallel threshold, not a multiple of 4
  for (bool normal : {false, true}) {
    auto draw = [&] {
      Generator gen(99);
      return (normal ? randn({n}, &gen) : rand({n}, &gen)).to_vector();
    };
    std::vector<float> one = with_threads(1, draw);
    std::vector<float> two = with_threads(2, draw);
    EXPECT_EQ(one, two) << (normal ? "randn" : "rand");
  }
}

TEST(Philox, RandnHasMeanZeroAndStdOneAndRandIsInUnitInterval) {
  const int64_t n = 1000000;
  Generator gen(2024);
  std::vector<float> z = randn({n}, &gen).to_vector();
  double sum = 0, sum_sq = 0;
  for (float x : z) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x, sum_sq += double(x) * x;
  }
  double mean = sum / double(n), std_dev = std::sqrt(sum_sq / double(n) - mean * mean);
  // standard errors: 1e-3 for the mean, 7e-4 for the std; allow 5 of them
  EXPECT_NEAR(mean, 0.0, 5e-3);
  EXPECT_NEAR(std_dev, 1.0, 5e-3);

  std::vector<float> u = rand({n}, &gen).to_vector();
  double usum = 0;
  for (float x : u) {
    ASSERT_GE(x, 0.0f);
    ASSERT_LT(x, 1.0f);
    usum += x;
  }
  EXPECT_NEAR(usum / double(n), 0.5, 2e-3);
}

TEST(Philox, SameSeedRepeatsAndDrawsAdvance) {
  Generator a(7), b(7);
  std::vector<float> first = randn({10}, &a).to_vector();
  EXPECT_EQ(first, randn({10}, &b).to_vector());
  EXPECT_NE(first, randn({10}, &a).to_vector());
  manual_seed(5);
  std::vector<float> seeded = randn({10}).to_vector();
  manual_seed(5);
  EXPECT_EQ(seeded, randn({10}).to_vector());
}

// --- 16-bit floats

// Expected patterns computed with an exact rational round-to-nearest-even onto every finite f16 /
// bf16 value in Python (fractions.Fraction), cross-checked for f16 against Python's
// struct.pack('<e', x), which rounds half to even (it raises OverflowError instead of returning
// inf; those rows follow IEEE 754: a value at or above max + half an ulp rounds to inf).
TEST(HalfFloats, RoundToNearestEvenAgainstHandComputedValues) {
  struct Row {
    uint32_t f32_bits;
    uint16_t f16, bf16;
    const char* what;
  };
  const Row rows[] = {
      {0x3f800000, 0x3c00, 0x3f80, "1"},
      {0xc0200000, 0xc100, 0xc020, "-2.5"},
      {0x3dcccccd, 0x2e66, 0x3dcd, "0.1f"},
      {0x40490fdb, 0x4248, 0x4049, "pi"},
      {0x80000000, 0x8000, 0x8000, "-0"},
      {0x477fe000, 0x7bff, 0x4780, "65504, f16 max"},
      {0x477fefff, 0x7bff, 0x4780, "just below 65520 stays finite in f16"},
      {0x477ff000, 0x7c00, 0x4780, "65520 ties to even: f16 inf"},
      {0x47c35000, 0x7c00, 0x47c3, "1e5 overflows f16"},
      {0x7f7fffff, 0x7c00, 0x7f80, "f32 max overflows bf16"},
      {0x33800000, 0x0001, 0x3380, "2^-24, smallest f16 subnormal"},
      {0x33000000, 0x0000, 0x3300, "2^-25 ties to even: f16 0"},
      {0x33000001, 0x0001, 0x3300, "just above 2^-25: f16 rounds up"},
      {0x33c00000, 0x0002, 0x33c0, "3*2^-25 ties to even: f16 2 ulps"},
      {0x387fc000, 0x03ff, 0x3880, "largest f16 subnormal"},
      {0x38800000, 0x0400, 0x3880, "2^-14, smallest f16 normal"},
      {0x3f801000, 0x3c00, 0x3f80, "1 + 2^-11 ties to even in f16"},
      {0x3f803000, 0x3c02, 0x3f80, "1 + 3*2^-11 ties up in f16"},
      {0x3f808000, 0x3c04, 0x3f80, "1 + 2^-8 ties to even in bf16"},
      {0x3f818000, 0x3c0c, 0x3f82, "1 + 3*2^-8 ties up in bf16"},
      {0x3f808008, 0x3c04, 0x3f81, "just above a bf16 tie"},
      {0x000116c2, 0x0000, 0x0001, "f32 subnormal to bf16 subnormal"},
      {0x00008000, 0x0000, 0x0000, "bf16 subnormal tie to even (0)"},
      {0x00018000, 0x0000, 0x0002, "bf16 subnormal tie to even (2)"},
      {0x7f800000, 0x7c00, 0x7f80, "inf"},
      {0xff800000, 0xfc00, 0xff80, "-inf"},
  };
  for (const Row& r : rows) {
    float f = float_of(r.f32_bits);
    EXPECT_EQ(f32_to_f16(f), r.f16) << r.what;
    EXPECT_EQ(f32_to_bf16(f), r.bf16) << r.what;
  }
}

TEST(HalfFloats, NaNStaysNaN) {
  // A NaN whose payload sits only in the low 16 bits would truncate to inf in bf16.
  for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    float nan = float_of(bits);
    EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(nan)))) << std::hex << bits;
    EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(nan)))) << std::hex << bits;
  }
}

TEST(HalfFloats, EveryPatternSurvivesARoundTripThroughF32) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    auto bits = uint16_t(h);
    float from_f16 = f16_to_f32(bits);
    bool f16_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    EXPECT_EQ(std::isnan(from_f16), f16_nan) << std::hex << h;
    if (f16_nan)
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(from_f16)))) << std::hex << h;
    else
      ASSERT_EQ(f32_to_f16(from_f16), bits) << std::hex << h;

    float from_bf16 = bf16_to_f32(bits);
    if (std::isnan(from_bf16))
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bf16)))) << std::hex << h;
    else
      ASSERT_EQ(f32_to_bf16(from_bf16), bits) << std::hex << h;
  }
}

TEST(HalfFloats, F16DecodesSubnormalsAndSpecials) {
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_f32(0xfc00), -INFINITY);
  EXPECT_EQ(bits_of(f16_to_f32(0x8000)), 0x80000000u);
}

TEST(HalfFloats, TensorCastsRoundTheSameWay) {
  std::vector<float> v = {1.0f, float_of(0x3f808000), float_of(0x3f818000), 65520.0f, -0.0f};
  Tensor x = from_vector(v, {5});
  std::vector<float> bf = x.to(DType::bf16).to(DType::f32).to_vector();
  std::vector<float> hf = x.to(DType::f16).to(DType::f32).to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(bits_of(bf[i]), bits_of(bf16_to_f32(f32_to_bf16(v[i])))) << i;
    EXPECT_EQ(bits_of(hf[i]), bits_of(f16_to_f32(f32_to_f16(v[i])))) << i;
  }
  EXPECT_EQ(hf[3], INFINITY);
}

// A long contiguous cast takes the CPU's vector rounding (backend/cpu/half_rows.hpp); every bit
// pattern class (NaNs, infinities, denormals, ties, overflow) must come out as f32_to_bf16 makes it.
TEST(HalfFloats, VectorBf16CastMatchesTheScalarRoundingBitForBit) {
  std::vector<uint32_t> bits = {0x3f808000, 0x3f818000, 0x3f808008, 0x000116c2, 0x00008000, 0x00018000,
                                0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xff800001,
                                0x7fffffff, 0x80000000, 0x807fffff, 0x7f7f8000};
  uint64_t state = 0x9e3779b97f4a7c15ull;
  while (bits.size() < 100003) {  // not a multiple of 16: the scalar tail runs too
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    bits.push_back(uint32_t(state >> 32));
  }
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = float_of(bits[i]);
  Tensor rounded = from_vector(v, {int64_t(v.size())}).to(DType::bf16);
  const auto* got = static_cast<const uint16_t*>(rounded.raw());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(v[i])) << std::hex << bits[i];
}

// --- caching allocator

TEST(Allocator, SecondRoundOfTheSameSizesComesFromThePool) {
  auto& alloc = CachingHostAllocator::instance();
  const std::vector<size_t> sizes = {1, 63, 64, 65, 1000, 4096, 100000, (1u << 20) + 5, 3u << 20, 1000};
  auto round = [&] {
    std::vector<void*> blocks;
    for (size_t s : sizes) {
      void* p = alloc.allocate(s);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << "size " << s;
      std::memset(p, 0xab, s);  // the block really holds s bytes
      blocks.push_back(p);
    }
    for (size_t i = 0; i < sizes.size(); ++i) alloc.deallocate(blocks[i], sizes[i]);
  };
  round();
  AllocatorStats before = alloc.stats();
  round();
  AllocatorStats after = alloc.stats();
  EXPECT_EQ(after.system_allocations, before.system_allocations);
  EXPECT_EQ(after.pool_hits, before.pool_hits + sizes.size());
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  EXPECT_GE(after.peak_bytes_in_use, after.bytes_in_use);
}

TEST(Allocator, TensorsReuseCachedBlocksAndAreAligned) {
  auto make = [] {
    std::vector<Tensor> ts;
    for (int64_t n : {3, 17, 1000, 250000}) ts.push_back(empty({n}));
    for (const Tensor& t : ts) EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  };
  make();
  uint64_t before = CachingHostAllocator::instance().stats().system_allocations;
  make();
  EXPECT_EQ(CachingHostAllocator::instance().stats().system_allocations, before);
}

TEST(Allocator, RoundSizeNeverShrinks) {
  for (size_t s : {size_t(0), size_t(1), size_t(64), size_t(65), size_t(1) << 20, (size_t(1) << 20) + 1}) {
    size_t r = CachingHostAllocator::round_size(s);
    EXPECT_GE(r, std::max<size_t>(s, 1));
    EXPECT_EQ(r % 64, 0u);
  }
}

// --- tensor views, copies and host access

TEST(TensorViews, ReshapeOfANonContiguousTensorCopies) {
  Tensor t = arange(6, DType::f32).reshape({2, 3});
  Tensor same = t.reshape({3, 2});
  EXPECT_EQ(same.storage(), t.storage());  // contiguous: a view
  Tensor tt = t.transpose(0, 1);           // [3, 2], strides [1, 3]
  Tensor r = tt.reshape({6});
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(r.to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorViews, ViewOfANonContiguousTensorSaysToUseReshape) {
  Tensor tt = arange(6, DType::f32).reshape({2, 3}).transpose(0, 1);
  std::string msg = ld::test::error_message([&] { tt.view({6}); });
  EXPECT_NE(msg.find("use reshape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3, 2]"), std::string::npos) << msg;
  // A view that only splits a dim of a transposed tensor is still possible.
  EXPECT_EQ(tt.view({3, 1, 2}).storage(), tt.storage());
}

TEST(TensorViews, NarrowOutOfRangeNamesTheRangeAndTheDim) {
  Tensor t = zeros({3, 5});
  std::string msg = ld::test::error_message([&] { t.narrow(1, 2, 4); });
  EXPECT_NE(msg.find("narrow: range [2, 6) is out of bounds for dim 1 of size 5"), std::string::npos) << msg;
  EXPECT_THROW(t.narrow(0, -1, 1), Error);
  EXPECT_THROW(t.narrow(2, 0, 1), Error);  // no such dim
  EXPECT_EQ(t.narrow(1, 5, 0).numel(), 0);  // empty at the end is fine
}

TEST(TensorViews, ExpandErrors) {
  Tensor t = zeros({3, 2});
  std::string msg = ld::test::error_message([&] { t.expand({3, 4}); });
  EXPECT_NE(msg.find("cannot expand [3, 2] to [3, 4]"), std::string::npos) << msg;
  EXPECT_THROW(t.expand({2}), Error);           // fewer dims
  EXPECT_THROW(t.expand({-1, 3, 2}), Error);    // a new leading dim needs a size
  Tensor e = zeros({3, 1}).expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
}

TEST(TensorViews, CopyBroadcastsAndCasts) {
  // i64 row broadcast into a transposed f32 view of a [3, 2] buffer
  Tensor base = zeros({3, 2});
  base.transpose(0, 1).copy_(from_vector<int64_t>({1, 2, 3}, {3}));
  EXPECT_EQ(base.to_vector(), (std::vector<float>{1, 1, 2, 2, 3, 3}));

  // f32 into bf16 rounds to nearest even
  Tensor bf = zeros({2, 3}, DType::bf16);
  bf.copy_(from_vector<float>({1.0f, float_of(0x3f808000), float_of(0x3f818000)}, {1, 3}));
  std::vector<float> v = bf.to_vector();
  EXPECT_EQ(v[3], 1.0f);
  EXPECT_EQ(bits_of(v[4]), 0x3f800000u);
  EXPECT_EQ(bits_of(v[5]), 0x3f820000u);

  // f32 to i32 truncates toward zero, as a C++ cast
  Tensor ints = zeros({3}, DType::i32);
  ints.copy_(from_vector<float>({2.7f, -2.7f, 0.2f}, {3}));
  EXPECT_EQ(ints.to_vector<int32_t>(), (std::vector<int32_t>{2, -2, 0}));

  std::string msg = ld::test::error_message([&] { zeros({2, 3}).copy_(zeros({2})); });
  EXPECT_NE(msg.find("copy_"), std::string::npos) << msg;
}

TEST(TensorViews, HostAccessOnViews) {
  Tensor t = arange(12, DType::f32).reshape({3, 4});
  EXPECT_EQ(t.transpose(0, 1).to_vector(), (std::vector<float>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(t.narrow(0, 1, 2).narrow(1, 1, 2).to_vector(), (std::vector<float>{5, 6, 9, 10}));
  EXPECT_EQ(t.narrow(0, 2, 1).narrow(1, 3, 1).item(), 11.0);
  Tensor ids = arange(10).narrow(0, 3, 4);  // i64 view with an offset
  EXPECT_EQ(ids.to_vector<int64_t>(), (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_EQ(ids.narrow(0, 1, 1).item(), 4.0);
  Tensor i32 = arange(10, DType::i32).narrow(0, 7, 1);
  EXPECT_EQ(i32.item(), 7.0);
  EXPECT_THROW(t.item(), Error);
  Tensor expanded = from_vector<float>({2}, {1}).expand({3});
  EXPECT_EQ(expanded.to_vector(), (std::vector<float>{2, 2, 2}));
}

TEST(TensorViews, FromBlobKeepsTheOwnerAliveAsLongAsAnyView) {
  auto buffer = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  std::weak_ptr<std::vector<float>> watch = buffer;
  Tensor t = from_blob(buffer->data(), {2, 3}, DType::f32, buffer);
  Tensor view = t.narrow(1, 1, 2);
  buffer.reset();
  t = Tensor();
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ(view.to_vector(), (std::vector<float>{2, 3, 5, 6}));
  view = Tensor();
  EXPECT_TRUE(watch.expired());
}
