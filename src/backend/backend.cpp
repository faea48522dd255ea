#include "backend/backend.hpp"

#include "backend/cpu/cpu_backend.hpp"
#if LIANDAN_HAVE_CUDA
#include "backend/cuda/cuda_backend.hpp"
#endif
#include "backend/profiled_backend.hpp"
#include "core/error.hpp"

namespace ld {

const char* op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
  }
  return "?";
}

const char* op_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return "neg";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::relu: return "relu";
    case UnaryOp::gelu_tanh: return "gelu_tanh";
    case UnaryOp::gelu_erf: return "gelu_erf";
    case UnaryOp::silu: return "silu";
  }
  return "?";
}

void check_cross_entropy_args(const CrossEntropyArgs& a) {
  LD_CHECK(a.logits_dtype == DType::f32 || a.logits_dtype == DType::bf16 || a.logits_dtype == DType::f16,
           "cross_entropy: logits must be f32, bf16 or f16, got ", dtype_name(a.logits_dtype));
  LD_CHECK(a.ld == 0 || a.ld >= a.vocab, "cross_entropy: row stride ", a.ld, " is below the vocabulary ", a.vocab);
}

void Backend::not_implemented(std::string_view kernel) const {
  LD_FAIL("kernel '", kernel, "' is not implemented on the ", name(), " backend yet");
}

// clang-format off
void Backend::copy_strided(int, const int64_t*, DType, const void*, const int64_t*, DType, void*, const int64_t*) { not_implemented("copy_strided"); }
void Backend::fill(DType, void*, int64_t, double) { not_implemented("fill"); }
void Backend::random_fill(RandomKind, float*, int64_t, uint64_t, uint64_t, float, float) { not_implemented("random_fill"); }
void Backend::binary(BinaryOp, int, const int64_t*, const float*, const int64_t*, const float*, const int64_t*, float*) { not_implemented("binary"); }
void Backend::unary(UnaryOp, int64_t, const float*, float*) { not_implemented("unary"); }
void Backend::unary_backward(UnaryOp, int64_t, const float*, const float*, const float*, float*) { not_implemented("unary_backward"); }
void Backend::affine(int64_t, const float*, float, float, float*) { not_implemented("affine"); }
void Backend::where(int, const int64_t*, const uint8_t*, const int64_t*, const float*, const int64_t*, const float*, const int64_t*, float*) { not_implemented("where"); }
void Backend::swiglu_forward(int64_t, const float*, const float*, float*) { not_implemented("swiglu_forward"); }
void Backend::swiglu_backward(int64_t, const float*, const float*, const float*, float*, float*) { not_implemented("swiglu_backward"); }
void Backend::dropout(int64_t, const float*, float, uint64_t, uint64_t, float*) { not_implemented("dropout"); }
void Backend::reduce_sum(int64_t, int64_t, int64_t, const float*, float*) { not_implemented("reduce_sum"); }
void Backend::argmax(int64_t, int64_t, const float*, int64_t*) { not_implemented("argmax"); }
void Backend::topk(int64_t, int64_t, int64_t, const float*, float*, int64_t*) { not_implemented("topk"); }
void Backend::scatter_add_rows(int64_t, int64_t, int64_t, const int64_t*, const float*, float*) { not_implemented("scatter_add_rows"); }
void Backend::gemm(const GemmArgs&) { not_implemented("gemm"); }
void Backend::layernorm_forward(int64_t, int64_t, const float*, const float*, const float*, const float*, float, float*, float*, float*, float*) { not_implemented("layernorm_forward"); }
void Backend::layernorm_backward(int64_t, int64_t, const float*, const float*, const float*, const float*, const float*, float*, float*, float*) { not_implemented("layernorm_backward"); }
void Backend::rmsnorm_forward(int64_t, int64_t, const float*, const float*, const float*, float, float*, float*, float*) { not_implemented("rmsnorm_forward"); }
void Backend::rmsnorm_backward(int64_t, int64_t, const float*, const float*, const float*, const float*, float*, float*) { not_implemented("rmsnorm_backward"); }
void Backend::softmax_forward(int64_t, int64_t, const float*, float*, bool) { not_implemented("softmax_forward"); }
void Backend::softmax_backward(int64_t, int64_t, const float*, const float*, float*, bool) { not_implemented("softmax_backward"); }
void Backend::embedding_forward(int64_t, const void*, DType, int64_t, const float*, float*) { not_implemented("embedding_forward"); }
void Backend::embedding_backward(int64_t, const void*, DType, int64_t, int64_t, const float*, float*) { not_implemented("embedding_backward"); }
void Backend::attention_forward(const AttentionArgs&, const float*, const float*, const float*, float*, float*) { not_implemented("attention_forward"); }
void Backend::attention_backward(const AttentionArgs&, const float*, const float*, const float*, const float*, const float*, const float*, float*, float*, float*) { not_implemented("attention_backward"); }
void Backend::rope(const RopeArgs&, const float*, float*) { not_implemented("rope"); }
void Backend::cross_entropy_forward(const CrossEntropyArgs&, float*, float*) { not_implemented("cross_entropy_forward"); }
void Backend::cross_entropy_backward(const CrossEntropyArgs&, const float*, const float*, void*) { not_implemented("cross_entropy_backward"); }
void Backend::adamw_step(std::span<const AdamWArgs>) { not_implemented("adamw_step"); }
void Backend::round_bf16(int64_t, const float*, uint16_t*, uint64_t, uint64_t) { not_implemented("round_bf16"); }
// clang-format on

namespace {
Backend& real_backend_for(Device device) {
  if (device.kind == DeviceKind::cpu) return cpu_backend();
#if LIANDAN_HAVE_CUDA
  if (device.kind == DeviceKind::cuda) return cuda_backend(device.index);  // throws when there is no device
#endif
  LD_FAIL("device ", device.str(), " is not available: this build of liandan has no CUDA backend");
}
}  // namespace

Backend& backend_for(Device device) {
  Backend& real = real_backend_for(device);
  return active_kernel_profile() != nullptr ? profiled_backend(real) : real;
}

}  // namespace ld
