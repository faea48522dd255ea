#pragma once
// Products with few rows against a weight matrix, the shape of a Linear (W [n, k]) or Conv1D
// (W [k, n]) forward while decoding (one or a few tokens): Y[m, n] = X[m, k] W^T or X W (+ Y). oneDNN's sgemm is tuned
// for large products and leaves these far below memory bandwidth; this kernel streams W once, with
// each W vector feeding all m rows of X, and splits the rows of W between the threads.
#include <cstdint>

namespace ld::cpu {

inline constexpr int64_t kSmallMMax = 8;  // the most rows of X this kernel takes for W [n, k]
inline constexpr int64_t kMaxRowsKn = 2;  // ... and for W [k, n] (gemm.cpp: sgemm is faster from 3 rows)

// W f32 [n, k] (w_kn false: Y = X W^T) or [k, n] (w_kn true: Y = X W) with row stride ldw; X [m, k]
// with row stride ldx; Y [m, n] with row stride ldy. accumulate: Y += the product. m in 1..kSmallMMax
// (W [n, k]) or 1..kMaxRowsKn (W [k, n]).
void small_m_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w, int64_t ldw, bool w_kn,
                  float* y, int64_t ldy, bool accumulate);
// The same with bf16 weights (raw 16-bit patterns), widened to f32 in registers: f32 arithmetic.
void small_m_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const uint16_t* w, int64_t ldw,
                  bool w_kn, float* y, int64_t ldy, bool accumulate);
// The same with int8 weights (their integer values; cpu::int8_rows_gemm applies row scales), W [n, k]
// only (w_kn false).
void small_m_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const int8_t* w, int64_t ldw,
                  bool w_kn, float* y, int64_t ldy, bool accumulate);

// y[i] = x . W[rows[i]] for one row x [k] and W [n, k] (f32 or bf16) with row stride ldw, i in
// [0, count): each exactly as small_m_gemm(1, n, k, x, k, w, ldw, false, ...) computes that row's
// output (same kernel, same order of operations), for a few rows out of many (infer::ScreenedHead).
void small_m_gemm_rows(int64_t k, const float* x, const float* w, int64_t ldw, const int32_t* rows, int64_t count,
                       float* y);
void small_m_gemm_rows(int64_t k, const float* x, const uint16_t* w, int64_t ldw, const int32_t* rows, int64_t count,
                       float* y);

}  // namespace ld::cpu
