#include <string>
#include <utility>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

OpCase matmul_case(InputSpec a, InputSpec b, const std::string& variant) {
  OpCase c;
  c.op = "matmul";
  c.variant = variant;
  c.inputs = {a, b};
  c.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::matmul(t[0], t[1])}; };
  c.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{ref_matmul(t[0], t[1])}; };
  return c;
}

Ref ref_linear(const Ref& x, const Ref& w, const Ref* b) {
  int64_t in = w.shape[1], out = w.shape[0], rows = x.numel() / in;
  Shape s = x.shape;
  s.back() = out;
  Ref r(s);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? b->v[size_t(o)] : 0.0;
      for (int64_t k = 0; k < in; ++k) acc += x.v[size_t(i * in + k)] * w.v[size_t(o * in + k)];
      r.v[size_t(i * out + o)] = acc;
    }
  return r;
}

OpCase linear_case(InputSpec x, InputSpec w, bool bias, const std::string& variant) {
  OpCase c;
  c.op = "linear";
  c.variant = variant;
  c.inputs = {x, w};
  if (bias) c.inputs.push_back(in({w.shape[0]}));
  c.run = [bias](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{ops::linear(t[0], t[1], bias ? t[2] : Tensor())};
  };
  c.reference = [bias](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_linear(t[0], t[1], bias ? &t[2] : nullptr)};
  };
  return c;
}

// projection with W [in, out] (Hugging Face's Conv1D) and/or an addend [..., out]: the reference
// transposes W to linear's layout and adds the addend.
Ref ref_projection(const Ref& x, const Ref& w, ops::WeightLayout layout, const Ref* bias, const Ref* addend) {
  Ref w_out_in = w;
  if (layout == ops::WeightLayout::in_out) {
    const int64_t in = w.shape[0], out = w.shape[1];
    w_out_in = Ref({out, in});
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) w_out_in.v[size_t(o * in + i)] = w.v[size_t(i * out + o)];
  }
  Ref r = ref_linear(x, w_out_in, bias);
  if (addend)
    for (size_t i = 0; i < r.v.size(); ++i) r.v[i] += addend->v[i];
  return r;
}

// The addend arrives here as a copy the harness still holds, so this checks the copying path; the
// in-place one is in projection_addend_test.cpp.
OpCase projection_case(InputSpec x, InputSpec w, ops::WeightLayout layout, bool bias, bool addend,
                       const std::string& variant) {
  OpCase c;
  c.op = "projection";
  c.variant = variant;
  c.inputs = {x, w};
  const int64_t out = w.shape[layout == ops::WeightLayout::in_out ? 1 : 0];
  Shape out_shape = x.shape;
  out_shape.back() = out;
  if (bias) c.inputs.push_back(in({out}));
  if (addend) c.inputs.push_back(in(out_shape));
  c.run = [layout, bias, addend](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{
        ops::projection(t[0], t[1], layout, bias ? t[2] : Tensor(), addend ? t[bias ? 3 : 2] : Tensor())};
  };
  c.reference = [layout, bias, addend](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_projection(t[0], t[1], layout, bias ? &t[2] : nullptr, addend ? &t[2] : nullptr)};
  };
  return c;
}

constexpr uint64_t kRandomSeed = 303;

Shape with_matrix(Shape batch, int64_t rows, int64_t cols) {
  batch.push_back(rows), batch.push_back(cols);
  return batch;
}

// matmul: M, K, N in 1..9 and a batch of rank 0-2 that each side has in full or as a broadcast
// partner. linear: x of rank 1-3 and an optional bias. Every floating input in a drawn layout.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "matmul", 5, [](Rng& rng) {
    Shape batch = draw_shape(rng, int(draw_int(rng, 0, 2)));
    Shape batch_a = draw_bool(rng) ? batch : broadcast_partner(rng, batch), batch_b = broadcast_partner(rng, batch);
    if (draw_bool(rng)) std::swap(batch_a, batch_b);
    int64_t m = draw_int(rng, 1, 9), k = draw_int(rng, 1, 9), n = draw_int(rng, 1, 9);
    return matmul_case(in_random(rng, with_matrix(batch_a, m, k)), in_random(rng, with_matrix(batch_b, k, n)), "");
  });
  add_random_cases(cases, kRandomSeed, "linear", 4, [](Rng& rng) {
    Shape x = draw_small_shape(rng, int(draw_int(rng, 1, 3)));
    Shape w = {draw_int(rng, 1, 9), x.back()};
    bool bias = draw_bool(rng);
    return linear_case(in_random(rng, x), in_random(rng, w), bias, bias ? "bias" : "no bias");
  });
  add_random_cases(cases, kRandomSeed, "projection", 4, [](Rng& rng) {
    Shape x = draw_small_shape(rng, int(draw_int(rng, 1, 3)));
    const auto layout = draw_bool(rng) ? ops::WeightLayout::in_out : ops::WeightLayout::out_in;
    const int64_t out = draw_int(rng, 1, 9);
    Shape w = layout == ops::WeightLayout::in_out ? Shape{x.back(), out} : Shape{out, x.back()};
    const bool addend = draw_bool(rng), bias = !addend && draw_bool(rng);
    std::string variant = layout == ops::WeightLayout::in_out ? "W [in, out]" : "W [out, in]";
    variant += addend ? ", addend" : bias ? ", bias" : "";
    return projection_case(in_random(rng, x), in_random(rng, w), layout, bias, addend, variant);
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases{
      matmul_case(in({5, 3}), in({3, 7}), "2-D"),
      matmul_case(in({2, 4, 3}), in({3, 5}), "batched @ broadcast matrix"),
      matmul_case(in({2, 1, 4, 3}), in({3, 3, 2}, Layout::transposed), "broadcast batch, transposed rhs"),
      matmul_case(in({6, 3}, Layout::transposed), in({3, 1}), "transposed lhs, n=1"),
      matmul_case(in({1, 1}), in({1, 9}), "k=1"),
      linear_case(in({2, 3, 5}), in({4, 5}), true, "3-D input with bias"),
      linear_case(in({5, 7}, Layout::transposed), in({3, 7}), false, "transposed input, no bias"),
      linear_case(in({1, 1}), in({6, 1}), true, "size-1"),
      // in >= out and >= 64 takes the oneDNN matmul-primitive path (gemm.cpp), with and without bias
      linear_case(in({3, 96}), in({40, 96}), true, "wide input, bias: matmul primitive with sum post-op"),
      linear_case(in({2, 2, 70}), in({70, 70}), false, "square, no bias: matmul primitive"),
      // 70 rows: the weight gradient dY^T X has K = 70 >= 64 and a narrow side, the primitive's TN path
      linear_case(in({70, 9}), in({5, 9}), true, "weight gradient through the matmul primitive"),
      projection_case(in({2, 3, 5}), in({5, 4}), ops::WeightLayout::in_out, true, false, "W [in, out], bias"),
      projection_case(in({5, 7}, Layout::transposed), in({7, 3}, Layout::transposed), ops::WeightLayout::in_out,
                      false, false, "W [in, out] transposed view, transposed input"),
      projection_case(in({70, 9}), in({9, 5}), ops::WeightLayout::in_out, true, false,
                      "W [in, out], weight gradient through the matmul primitive"),
      projection_case(in({2, 3, 5}), in({4, 5}), ops::WeightLayout::out_in, false, true, "W [out, in], addend"),
      projection_case(in({3, 96}), in({96, 40}), ops::WeightLayout::in_out, false, true, "W [in, out], addend"),
  };
  // Decoding shapes: the small-M kernel (gemm.cpp -> small_m_gemm.cpp) for 1..8 rows, each register
  // blocking, tails in k (260, 300 are not multiples of 16), in the rows of W [n, k] (2053) and the
  // columns of W [k, n] (1800; from 3 rows on that layout goes to sgemm), and large enough (>= 2^19
  // multiply-adds) to be split between the threads. Forward only: the small shapes above check the
  // gradients through the same kernels.
  for (int64_t m : {1, 2, 3, 4, 5, 8}) {
    OpCase lin = linear_case(in({m, 260}), in({2053, 260}), m % 2 == 1, "small M=" + std::to_string(m) + ", W [n, k]");
    OpCase mm = matmul_case(in({m, 300}), in({300, 1800}), "small M=" + std::to_string(m) + ", W [k, n]");
    for (OpCase* c : {&lin, &mm}) {
      c->check_grad = false;
      c->forward_rtol = c->forward_atol = 1e-4;  // 300-term f32 sums against float64
      cases.push_back(*c);
    }
  }
  // One row against W [k, n] splits the rows of W between the threads and adds their sums (k = 303:
  // a tail of rows after the groups of four; n = 1800: a tail of columns), onto a bias or an addend.
  for (bool addend : {false, true}) {
    OpCase c = projection_case(in({1, 303}), in({303, 1800}), ops::WeightLayout::in_out, !addend, addend,
                               std::string("small M=1, W [k, n], ") + (addend ? "addend" : "bias"));
    c.check_grad = false;
    c.forward_rtol = c.forward_atol = 1e-4;
    cases.push_back(c);
  }
  add_random_shape_cases(cases);
  return cases;
}

}  // namespace
}  // namespace ld::test
