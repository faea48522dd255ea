#pragma once
// The op test harness. Each op registers cases: inputs (shapes, kinds, layouts), how liandan runs
// the op, and a naive float64 reference. The driver (op_harness.cpp) then checks, for every case:
//   forward:  liandan (f32) against the float64 reference, on the same (f32-rounded) inputs;
//   backward: liandan's gradients of L = sum_k <out_k, W_k> (random W) against central finite
//             differences of the float64 reference, for every floating input that requires grad.
// Inputs can be non-contiguous views (transposed or sliced) so kernels see odd strides.
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace ld::test {

// A float64 tensor for references: row-major data plus shape.
struct Ref {
  Shape shape;
  std::vector<double> v;

  Ref() = default;
  explicit Ref(Shape s, double fill = 0.0) : shape(std::move(s)), v(size_t(shape_numel(shape)), fill) {}
  int64_t numel() const { return int64_t(v.size()); }
  int64_t size(int64_t d) const { return shape[size_t(d < 0 ? d + int64_t(shape.size()) : d)]; }
  int64_t dim() const { return int64_t(shape.size()); }
  // flat index of a multi-index
  int64_t index(std::initializer_list<int64_t> idx) const {
    int64_t flat = 0;
    size_t d = 0;
    for (int64_t i : idx) flat = flat * shape[d++] + i;
    return flat;
  }
  double& operator()(std::initializer_list<int64_t> idx) { return v[size_t(index(idx))]; }
  double operator()(std::initializer_list<int64_t> idx) const { return v[size_t(index(idx))]; }
};

enum class InputKind {
  normal,    // N(0, 1)
  positive,  // uniform in [0.5, 2]: for log, sqrt, denominators
  index,     // integers in [lo, hi) of the given dtype (ids, targets); no gradient
  mask,      // u8 0/1 with P(1) = p; no gradient
};

enum class Layout {
  contiguous,
  transposed,  // built transposed in memory, handed over as a transposed view (last two dims)
  sliced,      // a narrow() of a larger tensor: along dim 0 (non-zero offset) and the last dim (gaps)
};

struct InputSpec {
  Shape shape;
  InputKind kind = InputKind::normal;
  Layout layout = Layout::contiguous;
  bool requires_grad = true;
  DType dtype = DType::f32;  // for index inputs: i64 or i32
  double lo = 0, hi = 1;     // index range, or mask probability in lo
};

inline InputSpec in(Shape s, Layout layout = Layout::contiguous) { return {std::move(s), InputKind::normal, layout}; }
inline InputSpec positive(Shape s) { return {std::move(s), InputKind::positive}; }
inline InputSpec index_input(Shape s, int64_t lo, int64_t hi, DType dtype = DType::i64) {
  InputSpec spec{std::move(s), InputKind::index, Layout::contiguous, false, dtype};
  spec.lo = double(lo), spec.hi = double(hi);
  return spec;
}
inline InputSpec mask_input(Shape s, double p_one = 0.5) {
  InputSpec spec{std::move(s), InputKind::mask, Layout::contiguous, false, DType::u8};
  spec.lo = p_one;
  return spec;
}
inline InputSpec no_grad(InputSpec s) {
  s.requires_grad = false;
  return s;
}

struct OpCase {
  std::string op;       // a name from LD_FOR_EACH_OP
  std::string variant;  // what this case exercises, e.g. "broadcast row, odd sizes"
  std::vector<InputSpec> inputs;
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> run;
  std::function<std::vector<Ref>(const std::vector<Ref>&)> reference;
  double forward_rtol = 1e-5, forward_atol = 1e-5;
  double grad_rtol = 1e-3, grad_atol = 1e-4;  // f32 analytic vs f64 finite differences
  double fd_step = 1e-6;
  bool check_grad = true;  // false for ops with no gradient (argmax) or a random forward (dropout)
  uint64_t seed = 1;
};

inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.op << (c.variant.empty() ? "" : ": " + c.variant); }

using CaseFactory = std::function<std::vector<OpCase>()>;
bool register_cases(const char* file, CaseFactory factory);
std::vector<OpCase> all_cases();

}  // namespace ld::test

#define LD_OP_CASES_CAT2(a, b) a##b
#define LD_OP_CASES_CAT(a, b) LD_OP_CASES_CAT2(a, b)
// LD_OP_CASES { return std::vector<OpCase>{...}; } in any tests/ops/*_test.cpp
#define LD_OP_CASES                                                                                      \
  static std::vector<::ld::test::OpCase> LD_OP_CASES_CAT(ld_op_cases_, __LINE__)();                      \
  static const bool LD_OP_CASES_CAT(ld_op_cases_registered_, __LINE__) =                                 \
      ::ld::test::register_cases(__FILE__, LD_OP_CASES_CAT(ld_op_cases_, __LINE__));                     \
  static std::vector<::ld::test::OpCase> LD_OP_CASES_CAT(ld_op_cases_, __LINE__)()
