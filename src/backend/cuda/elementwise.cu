// Elementwise kernels with the CPU backend's formulas (cpu/elementwise.cpp): the same sigmoid-based
// GELU-tanh forward and tanh-based backward, the same SiLU and SwiGLU. expf/logf/erff/tanhf are
// CUDA's accurate versions (no fast-math), within a few ulp of the host's.
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/device_util.cuh"
#include "core/shape.hpp"

namespace ld {

namespace cuda_elementwise {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCoeff = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

__device__ inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ inline float unary_value(UnaryOp op, float v) {
  switch (op) {
    case UnaryOp::neg: return -v;
    case UnaryOp::exp: return expf(v);
    case UnaryOp::log: return logf(v);
    case UnaryOp::sqrt: return sqrtf(v);
    case UnaryOp::tanh: return tanhf(v);
    case UnaryOp::sigmoid: return sigmoid(v);
    case UnaryOp::relu: return v > 0.0f ? v : 0.0f;
    case UnaryOp::gelu_tanh: return v * sigmoid(2.0f * kSqrt2OverPi * (v + kGeluCoeff * v * v * v));
    case UnaryOp::gelu_erf: return 0.5f * v * (1.0f + erff(v * kInvSqrt2));
    case UnaryOp::silu: return v * sigmoid(v);
  }
  return 0.0f;
}

// dx for one element; x the input, y the forward's output.
__device__ inline float unary_grad(UnaryOp op, float x, float y, float dy) {
  switch (op) {
    case UnaryOp::neg: return -dy;
    case UnaryOp::exp: return dy * y;
    case UnaryOp::log: return dy / x;
    case UnaryOp::sqrt: return dy * 0.5f / y;
    case UnaryOp::tanh: return dy * (1.0f - y * y);
    case UnaryOp::sigmoid: return dy * y * (1.0f - y);
    case UnaryOp::relu: return x > 0.0f ? dy : 0.0f;
    case UnaryOp::gelu_tanh: {
      const float t = 2.0f * sigmoid(2.0f * kSqrt2OverPi * (x + kGeluCoeff * x * x * x)) - 1.0f;
      const float dt = kSqrt2OverPi * (1.0f + 3.0f * kGeluCoeff * x * x);
      return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dt);
    }
    case UnaryOp::gelu_erf:
      return dy * (0.5f * (1.0f + erff(x * kInvSqrt2)) + x * kInvSqrt2Pi * expf(-0.5f * x * x));
    case UnaryOp::silu: {
      const float s = sigmoid(x);
      return dy * s * (1.0f + x * (1.0f - s));
    }
  }
  return 0.0f;
}

__device__ inline float binary_value(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
  }
  return 0.0f;
}

}  // namespace cuda_elementwise

using namespace cuda_elementwise;

void CudaBackend::binary(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* a_strides,
                         const float* b, const int64_t* b_strides, float* out) {
  const std::vector<int64_t> os = contiguous_strides(Shape(shape, shape + ndim));
  const int64_t* strides[3] = {os.data(), a_strides, b_strides};
  const cuda::StridedSpace<3> space = cuda::make_space<3>(ndim, shape, strides);
  cuda::launch_map(stream(), space.numel, [=] __device__(int64_t i) {
    int64_t off[3];
    space.offsets(i, off);
    out[off[0]] = binary_value(op, a[off[1]], b[off[2]]);
  });
}

void CudaBackend::unary(UnaryOp op, int64_t n, const float* x, float* y) {
  cuda::launch_map(stream(), n, [=] __device__(int64_t i) { y[i] = unary_value(op, x[i]); });
}

void CudaBackend::unary_backward(UnaryOp op, int64_t n, const float* x, const float* y, const float* dy, float* dx) {
  cuda::launch_map(stream(), n, [=] __device__(int64_t i) {
    dx[i] = unary_grad(op, x ? x[i] : 0.0f, y ? y[i] : 0.0f, dy[i]);
  });
}

void CudaBackend::affine(int64_t n, const float* x, float alpha, float beta, float* y) {
  cuda::launch_map(stream(), n, [=] __device__(int64_t i) { y[i] = alpha * x[i] + beta; });
}

void CudaBackend::where(int ndim, const int64_t* shape, const uint8_t* cond, const int64_t* cond_strides,
                        const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides,
                        float* out) {
  const std::vector<int64_t> os = contiguous_strides(Shape(shape, shape + ndim));
  const int64_t* strides[4] = {os.data(), cond_strides, a_strides, b_strides};
  const cuda::StridedSpace<4> space = cuda::make_space<4>(ndim, shape, strides);
  cuda::launch_map(stream(), space.numel, [=] __device__(int64_t i) {
    int64_t off[4];
    space.offsets(i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  });
}

void CudaBackend::swiglu_forward(int64_t n, const float* gate, const float* up, float* out) {
  cuda::launch_map(stream(), n, [=] __device__(int64_t i) { out[i] = gate[i] * sigmoid(gate[i]) * up[i]; });
}

void CudaBackend::swiglu_backward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate,
                                  float* dup) {
  cuda::launch_map(stream(), n, [=] __device__(int64_t i) {
    const float g = gate[i], s = sigmoid(g);
    dup[i] = dout[i] * g * s;
    dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
  });
}

}  // namespace ld
