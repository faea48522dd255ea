// infer::ScreenedHead against the full product (cpu::small_m_gemm, what DecodeStep::run computes).
// argmax: the same token for random f32 and bf16 heads and 1..8 rows, for rows that differ by
// less than one int8 step (the screening cannot order them, the f32 pass must), for exact ties
// (lowest id), for zero rows and rows of very different scales; it computes few f32 rows; and it
// gives up on x with NaN or x = 0, where the bound does not hold. top_k: every logit at or above the
// k-th largest, ties included, with the full product's value, for k = 1, 5, 40.
#include "infer/screened_head.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "backend/cpu/small_m_gemm.hpp"
#include "core/dtype.hpp"

namespace ld::infer {
namespace {

struct Head {
  int64_t vocab, dim;
  std::vector<float> w;
  std::vector<uint16_t> bf16;  // when not empty, the head is this (w rounded to bf16)
};

Head rounded_to_bf16(Head h) {
  for (float v : h.w) h.bf16.push_back(f32_to_bf16(v));
  return h;
}

ScreenedHead make(const Head& h) {
  return h.bf16.empty() ? ScreenedHead(h.w.data(), h.vocab, h.dim) : ScreenedHead(h.bf16.data(), h.vocab, h.dim);
}

Head random_head(int64_t vocab, int64_t dim, uint32_t seed, float std = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, std);
  Head h{vocab, dim, std::vector<float>(size_t(vocab * dim)), {}};
  for (float& v : h.w) v = normal(rng);
  return h;
}

std::vector<float> random_rows(int64_t m, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(m * dim));
  for (float& v : x) v = normal(rng);
  return x;
}

// x W^T as the decode step's product computes it.
std::vector<float> full_logits(const Head& h, int64_t m, const float* x) {
  std::vector<float> y(size_t(m * h.vocab));
  if (h.bf16.empty())
    cpu::small_m_gemm(m, h.vocab, h.dim, x, h.dim, h.w.data(), h.dim, /*w_kn=*/false, y.data(), h.vocab, false);
  else
    cpu::small_m_gemm(m, h.vocab, h.dim, x, h.dim, h.bf16.data(), h.dim, /*w_kn=*/false, y.data(), h.vocab, false);
  return y;
}

// The argmax of each row of the full product (first maximum).
std::vector<int64_t> reference(const Head& h, int64_t m, const float* x) {
  const std::vector<float> y = full_logits(h, m, x);
  std::vector<int64_t> out;
  for (int64_t b = 0; b < m; ++b) {
    const float* row = y.data() + b * h.vocab;
    out.push_back(std::max_element(row, row + h.vocab) - row);
  }
  return out;
}

std::vector<int64_t> screened(ScreenedHead& head, int64_t m, const float* x) {
  std::vector<int64_t> out(size_t(m), -1);
  EXPECT_TRUE(head.argmax(m, x, out.data()));
  return out;
}

void expect_equal_to_the_full_product(const Head& h) {
  ScreenedHead head = make(h);
  for (int64_t m = 1; m <= ScreenedHead::kMaxRows; ++m)
    for (uint32_t trial = 0; trial < 10; ++trial) {
      const std::vector<float> x = random_rows(m, h.dim, 100 * uint32_t(m) + trial);
      EXPECT_EQ(screened(head, m, x.data()), reference(h, m, x.data())) << "m " << m << " trial " << trial;
      // The point of it: a few rows' logits per row of x, not the vocabulary.
      EXPECT_GE(head.last_candidates(), m);
      EXPECT_LE(head.last_candidates(), 8 * m);
    }
}

TEST(ScreenedHead, EqualsTheArgmaxOfTheFullProduct) {
  // 3001 rows: not a multiple of the kernel's row blocks; 77 columns: a masked tail after 4 vectors.
  const Head h = random_head(3001, 77, 1);
  expect_equal_to_the_full_product(h);
  SCOPED_TRACE("bf16");
  expect_equal_to_the_full_product(rounded_to_bf16(h));
}

// 400 rows within a fraction of one int8 step of a common row, placed so that x decides between
// them: their int8 copies say next to nothing about their order, so an underestimated bound drops
// the true argmax from the candidates.
TEST(ScreenedHead, RowsCloserThanTheInt8StepAreOrderedByTheF32Logits) {
  Head h = random_head(1000, 64, 2);
  const std::vector<float> x = random_rows(1, h.dim, 3);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> jitter(-1.0f, 1.0f);
  std::vector<float> base(size_t(h.dim));
  for (int64_t i = 0; i < h.dim; ++i) base[size_t(i)] = 0.03f * x[size_t(i)];  // the largest logit by far
  const float step = 0.03f * *std::max_element(x.begin(), x.end(), [](float a, float b) {
    return std::fabs(a) < std::fabs(b);
  }) / 127.0f;
  for (int64_t j = 300; j < 700; ++j)
    for (int64_t i = 0; i < h.dim; ++i) h.w[size_t(j * h.dim + i)] = base[size_t(i)] + 0.4f * step * jitter(rng);
  for (const Head& variant : {h, rounded_to_bf16(h)}) {
    SCOPED_TRACE(variant.bf16.empty() ? "f32" : "bf16");
    ScreenedHead head = make(variant);
    const std::vector<int64_t> want = reference(variant, 1, x.data());
    ASSERT_GE(want[0], 300);
    ASSERT_LT(want[0], 700);
    EXPECT_EQ(screened(head, 1, x.data()), want);
  }
}

// Every logit the full product has at or above the k-th largest (HF's top-k keeps ties), with the
// same value; the other entries are either -inf or the full product's value.
void expect_top_k_kept(const Head& h, int64_t m, const float* x, int64_t k, const std::vector<float>& got) {
  const std::vector<float> full = full_logits(h, m, x);
  for (int64_t b = 0; b < m; ++b) {
    std::vector<float> row(full.begin() + b * h.vocab, full.begin() + (b + 1) * h.vocab);
    std::vector<float> sorted = row;
    std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
    const float kth = sorted[size_t(k - 1)];
    for (int64_t j = 0; j < h.vocab; ++j) {
      const float g = got[size_t(b * h.vocab + j)];
      const bool kept = row[size_t(j)] >= kth, screened_out = g == -std::numeric_limits<float>::infinity();
      EXPECT_TRUE(screened_out ? !kept : g == row[size_t(j)]) << "row " << b << " token " << j << " k " << k;
    }
  }
}

TEST(ScreenedHead, TopKKeepsTheLargestLogitsExactly) {
  for (const Head& h : {random_head(3001, 77, 11), rounded_to_bf16(random_head(3001, 77, 11))}) {
    SCOPED_TRACE(h.bf16.empty() ? "f32" : "bf16");
    ScreenedHead head = make(h);
    for (int64_t m : {1, 3, 8})
      for (int64_t k : {1, 5, 40}) {
        const std::vector<float> x = random_rows(m, h.dim, 7 * uint32_t(m) + uint32_t(k));
        std::vector<float> got(size_t(m * h.vocab), 0.0f);
        ASSERT_TRUE(head.top_k(m, x.data(), k, got.data()));
        expect_top_k_kept(h, m, x.data(), k, got);
        EXPECT_LE(head.last_candidates(), m * (2 * k + 8)) << "m " << m << " k " << k;  // it screens
      }
  }
}

TEST(ScreenedHead, TopKKeepsEveryTieOfTheKthLogit) {
  Head h = random_head(500, 40, 12);
  const std::vector<float> x = random_rows(1, h.dim, 13);
  for (int64_t j : {50, 150, 250, 350})  // four equal logits, the largest
    for (int64_t i = 0; i < h.dim; ++i) h.w[size_t(j * h.dim + i)] = 0.05f * x[size_t(i)];
  ScreenedHead head = make(h);
  std::vector<float> got(size_t(h.vocab));
  ASSERT_TRUE(head.top_k(1, x.data(), 2, got.data()));
  expect_top_k_kept(h, 1, x.data(), 2, got);
  for (int64_t j : {50, 150, 250, 350}) EXPECT_EQ(got[size_t(j)], got[50]);
}

TEST(ScreenedHead, TiesGoToTheLowestId) {
  Head h = random_head(500, 40, 5);
  const std::vector<float> x = random_rows(2, h.dim, 6);
  for (int64_t j : {123, 321, 400})
    for (int64_t i = 0; i < h.dim; ++i) h.w[size_t(j * h.dim + i)] = 0.05f * x[size_t(i)];
  ScreenedHead head(h.w.data(), h.vocab, h.dim);
  const std::vector<int64_t> got = screened(head, 2, x.data());
  EXPECT_EQ(got[0], 123);
  EXPECT_EQ(got, reference(h, 2, x.data()));
}

TEST(ScreenedHead, ZeroRowsAndRowsOfVeryDifferentScales) {
  Head h = random_head(800, 50, 7);
  for (int64_t j = 0; j < h.vocab; ++j) {
    const float scale = j % 5 == 0 ? 0.0f : std::pow(10.0f, float(j % 7) - 3.0f);  // 0 and 1e-3 .. 1e3
    for (int64_t i = 0; i < h.dim; ++i) h.w[size_t(j * h.dim + i)] *= scale;
  }
  ScreenedHead head(h.w.data(), h.vocab, h.dim);
  for (uint32_t trial = 0; trial < 5; ++trial) {
    std::vector<float> x = random_rows(3, h.dim, 20 + trial);
    EXPECT_EQ(screened(head, 3, x.data()), reference(h, 3, x.data()));
  }
  // Only zero rows can win when every other logit is negative: the first zero row, id 0.
  Head zeros{4, 3, {0, 0, 0, -1, -1, -1, 0, 0, 0, -2, -2, -2}, {}};
  ScreenedHead small(zeros.w.data(), 4, 3);
  const std::vector<float> ones{1.0f, 1.0f, 1.0f};
  EXPECT_EQ(screened(small, 1, ones.data()), std::vector<int64_t>{0});
}

TEST(ScreenedHead, GivesUpWhereTheBoundDoesNotHold) {
  const Head h = random_head(100, 20, 8);
  ScreenedHead head(h.w.data(), h.vocab, h.dim);
  std::vector<float> x = random_rows(2, h.dim, 9);
  int64_t out[2];
  x[25] = std::numeric_limits<float>::quiet_NaN();  // row 1
  EXPECT_FALSE(head.argmax(2, x.data(), out));
  x[25] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(head.argmax(2, x.data(), out));
  std::fill(x.begin(), x.end(), 0.0f);
  EXPECT_FALSE(head.argmax(1, x.data(), out));
}

}  // namespace
}  // namespace ld::infer
