#include <cmath>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/parallel.hpp"
#include "backend/cpu/strided_loop.hpp"
#include "backend/cpu/vec_math.hpp"
#include "core/shape.hpp"

namespace ld {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoeff = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

template <typename F>
void parallel_map(int64_t n, F&& f) {
  cpu::parallel_chunks(n, [&f](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) f(i);
  });
}

template <typename Op>
void binary_loop(int ndim, const int64_t* shape, const float* a, const int64_t* as, const float* b, const int64_t* bs,
                 float* out, Op op) {
  std::vector<int64_t> os = contiguous_strides(Shape(shape, shape + ndim));
  cpu::for_each_row<3>(ndim, shape, {os.data(), as, bs},
                       [&](const std::array<int64_t, 3>& base, int64_t len, const std::array<int64_t, 3>& inc) {
                         float* o = out + base[0];
                         const float* pa = a + base[1];
                         const float* pb = b + base[2];
                         if (inc[1] == 1 && inc[2] == 1) {
#pragma omp simd
                           for (int64_t i = 0; i < len; ++i) o[i] = op(pa[i], pb[i]);
                         } else if (inc[1] == 1 && inc[2] == 0) {
                           float vb = pb[0];
#pragma omp simd
                           for (int64_t i = 0; i < len; ++i) o[i] = op(pa[i], vb);
                         } else if (inc[1] == 0 && inc[2] == 1) {
                           float va = pa[0];
#pragma omp simd
                           for (int64_t i = 0; i < len; ++i) o[i] = op(va, pb[i]);
                         } else {
                           for (int64_t i = 0; i < len; ++i) o[i * inc[0]] = op(pa[i * inc[1]], pb[i * inc[2]]);
                         }
                       });
}


}  // namespace

void CpuBackend::binary(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* a_strides,
                        const float* b, const int64_t* b_strides, float* out) {
  switch (op) {
    case BinaryOp::add: return binary_loop(ndim, shape, a, a_strides, b, b_strides, out, [](float x, float y) { return x + y; });
    case BinaryOp::sub: return binary_loop(ndim, shape, a, a_strides, b, b_strides, out, [](float x, float y) { return x - y; });
    case BinaryOp::mul: return binary_loop(ndim, shape, a, a_strides, b, b_strides, out, [](float x, float y) { return x * y; });
    case BinaryOp::div: return binary_loop(ndim, shape, a, a_strides, b, b_strides, out, [](float x, float y) { return x / y; });
  }
}

void CpuBackend::unary(UnaryOp op, int64_t n, const float* x, float* y) {
  switch (op) {
    case UnaryOp::neg: return parallel_map(n, [&](int64_t i) { y[i] = -x[i]; });
    case UnaryOp::exp: return parallel_map(n, [&](int64_t i) { y[i] = cpu::exp_approx(x[i]); });
    case UnaryOp::log: return parallel_map(n, [&](int64_t i) { y[i] = std::log(x[i]); });
    case UnaryOp::sqrt: return parallel_map(n, [&](int64_t i) { y[i] = std::sqrt(x[i]); });
    case UnaryOp::tanh: return parallel_map(n, [&](int64_t i) { y[i] = std::tanh(x[i]); });
    case UnaryOp::sigmoid: return parallel_map(n, [&](int64_t i) { y[i] = cpu::sigmoid_approx(x[i]); });
    case UnaryOp::relu: return parallel_map(n, [&](int64_t i) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; });
    case UnaryOp::gelu_tanh:
      return parallel_map(n, [&](int64_t i) {
        float v = x[i];
        y[i] = v * cpu::sigmoid_approx(2.0f * kSqrt2OverPi * (v + kGeluCoeff * v * v * v));  // = 0.5v(1+tanh(u))
      });
    case UnaryOp::gelu_erf:
      return parallel_map(n, [&](int64_t i) { y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2)); });
    case UnaryOp::silu: return parallel_map(n, [&](int64_t i) { y[i] = x[i] * cpu::sigmoid_approx(x[i]); });
  }
}

void CpuBackend::unary_backward(UnaryOp op, int64_t n, const float* x, const float* y, const float* dy, float* dx) {
  switch (op) {
    case UnaryOp::neg: return parallel_map(n, [&](int64_t i) { dx[i] = -dy[i]; });
    case UnaryOp::exp: return parallel_map(n, [&](int64_t i) { dx[i] = dy[i] * y[i]; });
    case UnaryOp::log: return parallel_map(n, [&](int64_t i) { dx[i] = dy[i] / x[i]; });
    case UnaryOp::sqrt: return parallel_map(n, [&](int64_t i) { dx[i] = dy[i] * 0.5f / y[i]; });
    case UnaryOp::tanh: return parallel_map(n, [&](int64_t i) { dx[i] = dy[i] * (1.0f - y[i] * y[i]); });
    case UnaryOp::sigmoid: return parallel_map(n, [&](int64_t i) { dx[i] = dy[i] * y[i] * (1.0f - y[i]); });
    case UnaryOp::relu: return parallel_map(n, [&](int64_t i) { dx[i] = x[i] > 0.0f ? dy[i] : 0.0f; });
    case UnaryOp::gelu_tanh:
      return parallel_map(n, [&](int64_t i) {
        float v = x[i];
        float t = cpu::tanh_via_exp(kSqrt2OverPi * (v + kGeluCoeff * v * v * v));
        float dt = kSqrt2OverPi * (1.0f + 3.0f * kGeluCoeff * v * v);
        dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * dt);
      });
    case UnaryOp::gelu_erf:
      return parallel_map(n, [&](int64_t i) {
        float v = x[i];
        dx[i] = dy[i] * (0.5f * (1.0f + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5f * v * v));
      });
    case UnaryOp::silu:
      return parallel_map(n, [&](int64_t i) {
        float s = cpu::sigmoid_approx(x[i]);
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
      });
  }
}

void CpuBackend::affine(int64_t n, const float* x, float alpha, float beta, float* y) {
  parallel_map(n, [&](int64_t i) { y[i] = alpha * x[i] + beta; });
}

void CpuBackend::where(int ndim, const int64_t* shape, const uint8_t* cond, const int64_t* cs, const float* a,
                       const int64_t* as, const float* b, const int64_t* bs, float* out) {
  std::vector<int64_t> os = contiguous_strides(Shape(shape, shape + ndim));
  cpu::for_each_row<4>(ndim, shape, {os.data(), cs, as, bs},
                       [&](const std::array<int64_t, 4>& base, int64_t len, const std::array<int64_t, 4>& inc) {
                         for (int64_t i = 0; i < len; ++i)
                           out[base[0] + i * inc[0]] =
                               cond[base[1] + i * inc[1]] ? a[base[2] + i * inc[2]] : b[base[3] + i * inc[3]];
                       });
}

void CpuBackend::swiglu_forward(int64_t n, const float* gate, const float* up, float* out) {
  parallel_map(n, [&](int64_t i) { out[i] = gate[i] * cpu::sigmoid_approx(gate[i]) * up[i]; });
}

void CpuBackend::swiglu_backward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate,
                                 float* dup) {
  parallel_map(n, [&](int64_t i) {
    float g = gate[i], s = cpu::sigmoid_approx(g);
    dup[i] = dout[i] * g * s;
    dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
  });
}

}  // namespace ld
