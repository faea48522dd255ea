#include <gtest/gtest.h>

#include <string>

#include "core/rng.hpp"
#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"
#include "test_util.hpp"

namespace ld::test {
namespace {

// out = zeros([rows, C]); out[index[i], :] += src[i, :]; inputs are (index, src)
Ref ref_index_add(const Ref& index, const Ref& src, int64_t rows) {
  int64_t dim = src.size(-1);
  Ref out({rows, dim});
  for (int64_t i = 0; i < index.numel(); ++i)
    for (int64_t c = 0; c < dim; ++c) out.v[size_t(int64_t(index.v[size_t(i)]) * dim + c)] += src.v[size_t(i * dim + c)];
  return out;
}

OpCase index_add_case(const std::string& variant, InputSpec index, InputSpec src, int64_t rows) {
  OpCase c;
  c.op = "index_add";
  c.variant = variant;
  c.inputs = {std::move(index), std::move(src)};
  c.run = [rows](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::index_add(t[0], t[1], rows)}; };
  c.reference = [rows](const std::vector<Ref>& t) { return std::vector<Ref>{ref_index_add(t[0], t[1], rows)}; };
  return c;
}

constexpr uint64_t kRandomSeed = 909;

// index of rank 0-2 (i32 or i64) into 1..9 rows, src = index shape + C, in a drawn layout.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "index_add", 4, [](Rng& rng) {
    int64_t rows = draw_int(rng, 1, 9), dim = draw_int(rng, 1, 9);
    Shape index_shape = draw_shape(rng, int(draw_int(rng, 0, 2)));
    InputSpec index = index_input(index_shape, 0, rows, draw_bool(rng) ? DType::i32 : DType::i64);
    Shape src_shape = index_shape;
    src_shape.push_back(dim);
    return index_add_case("", index, in_random(rng, src_shape), rows);
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  // 15 indices into 4 rows: rows are hit several times, so the forward must accumulate.
  cases.push_back(index_add_case("i64, repeated indices", index_input({15}, 0, 4), in({15, 7}), 4));
  // Rows no index names stay zero; the gradient of src is a gather of the output gradient.
  cases.push_back(index_add_case("i32, unused rows, transposed src", index_input({6}, 0, 3, DType::i32),
                                 in({6, 5}, Layout::transposed), 9));
  cases.push_back(index_add_case("i64, 2-D index, sliced src", index_input({2, 3}, 0, 5), in({2, 3, 4}, Layout::sliced), 5));
  cases.push_back(index_add_case("i64, parallel kernel path", index_input({70}, 0, 5), in({70, 300}), 5));
  add_random_shape_cases(cases);
  return cases;
}

TEST(IndexAdd, RejectsOutOfRangeIndicesAndMismatchedShapes) {
  Tensor src = zeros({3, 2});
  std::string msg = error_message([&] { ops::index_add(from_vector<int64_t>({0, 4, 1}, {3}), src, 4); });
  expect_mentions(msg, {"index_add", "index 4", "position 1", "rows=4"});
  EXPECT_THROW(ops::index_add(from_vector<int64_t>({0, -1, 1}, {3}), src, 4), Error);
  msg = error_message([&] { ops::index_add(from_vector<int64_t>({0, 1}, {2}), src, 4); });
  expect_mentions(msg, {"index_add", "[2]", "[3, 2]"});
  EXPECT_THROW(ops::index_add(zeros({3}), src, 4), Error);  // f32 index
}

}  // namespace
}  // namespace ld::test
