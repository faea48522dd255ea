#pragma once
// int8 matrices with one f32 scale per row (row j stands for s[j] * Q[j, :]): a quarter of the bytes
// of f32, widened to f32 in registers for f32 arithmetic. infer::ScreenedHead screens a vocabulary with
// them (screened_head.hpp).
#include <cstdint>

namespace ld::cpu {

inline constexpr int64_t kInt8RowsMaxM = 8;  // the most rows of X per call

// Rows [0, n) of the f32 matrix W [n, k] (row stride ldw) to int8, symmetric: scale[j] =
// max_abs[j] / 127 with max_abs[j] = max_i |W[j, i]|, Q[j, i] = W[j, i] / scale[j] rounded to the
// nearest, and err[j] >= max_i |W[j, i] - scale[j] Q[j, i]|, an upper bound with the rounding of its
// own computation included. A zero row gets scale 0 and err 0; a row holding NaN or an infinity gets
// Q 0, scale 0 and max_abs = err = +inf. The rows are split between SpinPool's threads.
void quantize_rows_int8(int64_t n, int64_t k, const float* w, int64_t ldw, int8_t* q, int64_t ldq, float* scale,
                        float* max_abs, float* err);
// The same for bf16 W (raw 16-bit patterns): each row widened to f32 exactly, then as above.
void quantize_rows_int8(int64_t n, int64_t k, const uint16_t* w, int64_t ldw, int8_t* q, int64_t ldq, float* scale,
                        float* max_abs, float* err);

// Y[m, n] = X[m, k] (s ⊙ Q)^T. X [m, k] with row stride ldx, Q [n, k] with row stride ldq, Y [m, n] with row stride ldy;
// m in 1..kInt8RowsMaxM. The rows of Q are split between SpinPool's threads.
void int8_rows_gemm(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const int8_t* q, int64_t ldq,
                    const float* scale, float* y, int64_t ldy);

}  // namespace ld::cpu
