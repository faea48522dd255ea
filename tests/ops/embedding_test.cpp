#include <gtest/gtest.h>

#include <string>

#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

// out[i, :] = table[ids[i], :]; inputs are (ids, table)
Ref ref_embedding(const Ref& ids, const Ref& table) {
  int64_t dim = table.size(1);
  Shape s = ids.shape;
  s.push_back(dim);
  Ref out(s);
  for (int64_t i = 0; i < ids.numel(); ++i)
    for (int64_t c = 0; c < dim; ++c) out.v[size_t(i * dim + c)] = table.v[size_t(int64_t(ids.v[size_t(i)]) * dim + c)];
  return out;
}

OpCase embedding_case(const std::string& variant, InputSpec ids, InputSpec table) {
  OpCase c;
  c.op = "embedding";
  c.variant = variant;
  c.inputs = {std::move(ids), std::move(table)};
  c.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{ops::embedding(t[0], t[1])}; };
  c.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{ref_embedding(t[0], t[1])}; };
  return c;
}

constexpr uint64_t kRandomSeed = 505;

// ids of rank 0-3 (i32 or i64) into a [V, C] table, V and C in 1..9, the table in a drawn layout.
void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "embedding", 4, [](Rng& rng) {
    int64_t vocab = draw_int(rng, 1, 9), dim = draw_int(rng, 1, 9);
    Shape ids_shape = draw_shape(rng, int(draw_int(rng, 0, 3)));
    InputSpec ids = index_input(ids_shape, 0, vocab, draw_bool(rng) ? DType::i32 : DType::i64);
    return embedding_case("", ids, in_random(rng, {vocab, dim}));
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  // 15 ids over 4 rows: every row is hit several times, so the backward must accumulate.
  cases.push_back(embedding_case("i64, repeated ids", index_input({3, 5}, 0, 4), in({4, 7})));
  cases.push_back(embedding_case("i32, size-1 dim, sliced table", index_input({2, 1, 3}, 0, 11, DType::i32),
                                 in({11, 5}, Layout::sliced)));
  cases.push_back(embedding_case("i64, transposed table", index_input({9}, 0, 6), in({6, 13}, Layout::transposed)));
  cases.push_back(embedding_case("i32, scalar id", index_input({}, 0, 3, DType::i32), in({3, 1})));
  // Wider rows and more ids than the kernel's parallel threshold, with heavy repetition.
  cases.push_back(embedding_case("i64, parallel kernel path", index_input({70, 9}, 0, 5), in({5, 37})));
  add_random_shape_cases(cases);
  return cases;
}

TEST(Embedding, OutOfRangeIdNamesTheIdItsPositionAndTheVocabSize) {
  Tensor table = zeros({10, 4});
  Tensor ids = from_vector<int64_t>({1, 2, 3, 12, 4, -1}, {2, 3});
  try {
    ops::embedding(ids, table);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("12"), std::string::npos) << msg;
    EXPECT_NE(msg.find("V=10"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[1, 0]"), std::string::npos) << msg;  // position of the first bad id
  }
  Tensor negative = from_vector<int32_t>({0, -3}, {2});
  try {
    ops::embedding(negative, table);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("-3"), std::string::npos) << e.what();
  }
}

TEST(Embedding, RejectsBadDtypesAndShapes) {
  Tensor table = zeros({10, 4});
  EXPECT_THROW(ops::embedding(zeros({3}), table), Error);                                  // f32 ids
  EXPECT_THROW(ops::embedding(from_vector<int64_t>({1}, {1}), zeros({10})), Error);       // 1-D table
  // bf16 tables are read for inference (infer::to_bf16_weights; tests/infer/bf16_weights_test.cpp)
  EXPECT_THROW(ops::embedding(from_vector<int64_t>({1}, {1}), zeros({10, 4}).to(DType::f16)), Error);
}

// The backward kernel splits columns across threads; the sums must not depend on the split.
TEST(Embedding, BackwardIsIdenticalForOneAndTwoThreads) {
  int saved = num_threads();
  int64_t vocab = 50, dim = 96, n = 4000;
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = (i * 7919) % vocab;
  Tensor id_tensor = from_vector(ids, {n});
  Generator gen(3);
  Tensor w = randn({n, dim}, &gen);
  std::vector<std::vector<float>> grads;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Tensor table = randn({vocab, dim}, &gen).set_requires_grad(true);
    ops::sum(ops::mul(ops::embedding(id_tensor, table), w)).backward();
    grads.push_back(table.grad().to_vector());
  }
  set_num_threads(saved);
  EXPECT_EQ(grads[0], grads[1]);
}

}  // namespace
}  // namespace ld::test
