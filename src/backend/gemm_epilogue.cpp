#include "backend/gemm_epilogue.hpp"

#include <memory>

#include "core/error.hpp"
#include "core/storage.hpp"

namespace ld {

bool has_epilogue(const GemmArgs& g) { return g.epilogue != GemmEpilogue::none || g.c_half != nullptr; }

void check_epilogue(const GemmArgs& g) {
  LD_CHECK(g.batch == 1 && g.alpha == 1.0f && g.beta == 0.0f,
           "gemm: an epilogue or a 16-bit C needs one product with alpha 1 and beta 0");
  LD_CHECK(g.c_half != nullptr || (g.c != nullptr && g.ldc == g.n), "gemm: an epilogue writes C with rows n apart");
  LD_CHECK(g.epilogue == GemmEpilogue::none || g.aux != nullptr, "gemm: the GELU epilogues need aux");
  // cuBLASLt's DGELU has no bias; nothing needs one there (a bias gradient is a column sum)
  LD_CHECK(g.epilogue != GemmEpilogue::dgelu_tanh || g.bias == nullptr, "gemm: the dgelu_tanh epilogue takes no bias");
  LD_CHECK(g.c_half == nullptr || g.precision != ComputePrecision::f32, "gemm: a 16-bit C needs a bf16 or fp16 product");
}

void gemm_then_epilogue(Backend& be, const GemmArgs& args) {
  check_epilogue(args);
  const int64_t count = args.m * args.n;
  std::shared_ptr<Storage> scratch;
  auto scratch_floats = [&] {
    if (!scratch) scratch = be.allocate(size_t(count) * sizeof(float));
    return static_cast<float*>(scratch->data());
  };
  GemmArgs plain = args;
  plain.epilogue = GemmEpilogue::none, plain.aux = nullptr, plain.c_half = nullptr, plain.ldc = args.n;
  const bool gelu = args.epilogue == GemmEpilogue::gelu_tanh;
  plain.c = gelu ? args.aux : args.c_half != nullptr ? scratch_floats() : args.c;
  be.gemm(plain);
  // f32 result of the epilogue: C, or for a 16-bit C the scratch (the product itself when no GELU)
  float* result = args.c_half == nullptr ? args.c : gelu ? scratch_floats() : plain.c;
  if (gelu) be.unary(UnaryOp::gelu_tanh, count, args.aux, result);
  if (args.epilogue == GemmEpilogue::dgelu_tanh)
    be.unary_backward(UnaryOp::gelu_tanh, count, args.aux, nullptr, plain.c, result);  // elementwise: in place
  if (args.c_half != nullptr) {
    const int64_t one = 1;
    be.copy_strided(1, &count, DType::f32, result, &one, half_dtype(args.precision), args.c_half, &one);
  }
}

}  // namespace ld
