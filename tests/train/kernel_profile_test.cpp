// KernelProfile: every Backend call made while it is alive is counted once under a label that says
// what it was, GEMMs with their FLOPs; profiling changes no result; without a profile backend_for()
// hands out the real backend again.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <cctype>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "backend/kernel_profile.hpp"
#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/objectives.hpp"
#include "train/optimizer.hpp"
#include "train/run_config.hpp"

namespace ld::test {
namespace {

const KernelTime* find(const std::vector<KernelTime>& rows, const std::string& kernel) {
  for (const KernelTime& r : rows)
    if (r.kernel == kernel) return &r;
  return nullptr;
}

std::string read_source(const std::string& relative) {
  std::ifstream in(std::string(LIANDAN_SOURCE_DIR) + "/" + relative);
  EXPECT_TRUE(in.good()) << "cannot read " << relative;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The identifier just before the '(' that opens the parameter list ending at close (a ')').
std::string function_name_before(const std::string& source, size_t close) {
  int depth = 0;
  size_t open = close;
  for (; open > 0; --open) {
    if (source[open] == ')') ++depth;
    if (source[open] == '(' && --depth == 0) break;
  }
  size_t end = open;
  while (end > 0 && std::isspace(static_cast<unsigned char>(source[end - 1]))) --end;
  size_t begin = end;
  while (begin > 0 && (std::isalnum(static_cast<unsigned char>(source[begin - 1])) || source[begin - 1] == '_')) --begin;
  return source.substr(begin, end - begin);
}

// Names of the functions declared `virtual ... name(` in backend.hpp.
std::set<std::string> virtual_names(const std::string& source) {
  std::set<std::string> names;
  for (size_t at = source.find("virtual "); at != std::string::npos; at = source.find("virtual ", at + 1)) {
    const size_t open = source.find('(', at);
    size_t end = open;
    while (end > at && std::isspace(static_cast<unsigned char>(source[end - 1]))) --end;
    size_t begin = end;
    while (begin > at && (std::isalnum(static_cast<unsigned char>(source[begin - 1])) || source[begin - 1] == '_'))
      --begin;
    names.insert(source.substr(begin, end - begin));
  }
  return names;
}

// Names of the functions marked `) override` (or `) const override`).
std::set<std::string> override_names(const std::string& source) {
  std::set<std::string> names;
  for (size_t at = source.find(" override"); at != std::string::npos; at = source.find(" override", at + 1)) {
    size_t close = at;
    while (close > 0 && source[close] != ')') --close;
    names.insert(function_name_before(source, close));
  }
  return names;
}

TEST(KernelProfile, CountsEachCallOnceWithItsFlops) {
  Generator gen(3);
  const Tensor a = randn({5, 7}, &gen), b = randn({7, 3}, &gen);
  KernelProfile profile;
  for (int i = 0; i < 3; ++i) ops::matmul(a, b);
  {
    ops::AutocastScope bf16(ops::ComputePrecision::bf16);
    ops::matmul(a, b);
  }
  ops::add(a, a);
  a.to(DType::bf16);
  const std::vector<KernelTime> rows = profile.totals();
  const KernelTime* f32 = find(rows, "gemm f32");
  ASSERT_NE(f32, nullptr) << profile.table(1);
  EXPECT_EQ(f32->calls, 3);
  EXPECT_DOUBLE_EQ(f32->flops, 3 * 2.0 * 5 * 7 * 3);
  EXPECT_EQ(f32->device, "cpu");
  ASSERT_NE(find(rows, "gemm bf16"), nullptr) << profile.table(1);
  EXPECT_EQ(find(rows, "gemm bf16")->calls, 1);
  ASSERT_NE(find(rows, "binary add"), nullptr) << profile.table(1);
  ASSERT_NE(find(rows, "copy f32->bf16"), nullptr) << profile.table(1);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_GE(rows[i - 1].seconds, rows[i].seconds) << "most time first";
}

TEST(KernelProfile, AFusedEpilogueIsOneGemmCall) {
  // The CPU runs the GELU epilogue's unary kernel after the product, inside the GEMM's call.
  Generator gen(4);
  const Tensor x = randn({4, 8}, &gen), w1 = randn({8, 16}, &gen), w2 = randn({16, 8}, &gen);
  KernelProfile profile;
  ops::gelu_mlp(x, w1, Tensor(), w2, Tensor(), ops::WeightLayout::in_out);
  const std::vector<KernelTime> rows = profile.totals();
  ASSERT_NE(find(rows, "gemm f32 gelu_tanh"), nullptr) << profile.table(1);
  EXPECT_EQ(find(rows, "unary gelu_tanh"), nullptr) << profile.table(1);
}

TEST(KernelProfile, ChangesNoResultOfATrainingStep) {
  models::StackConfig s;
  s.kind = models::StackKind::gpt2;
  s.n_layer = 2, s.n_head = 2, s.n_kv_head = 2, s.n_embd = 32, s.intermediate_size = 128;
  s.vocab_size = 64, s.n_positions = 16;
  std::vector<int64_t> ids(2 * 17);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(i * 37 % 64);
  const Tensor window = from_vector(ids, {2, 17});
  const Tensor inputs = window.narrow(1, 0, 16).contiguous(), targets = window.narrow(1, 1, 16).contiguous();

  auto step = [&](bool profiled, std::string* table) {
    Generator gen(7);
    auto model = models::make_causal_lm(io::make_hf_config(s, /*tie_word_embeddings=*/true), gen);
    train::Optimizer optimizer(model->named_parameters(), train::TrainSection{});
    std::unique_ptr<KernelProfile> profile;
    if (profiled) profile = std::make_unique<KernelProfile>();
    {
      ops::AutocastScope bf16(ops::ComputePrecision::bf16);
      train::clm_loss(*model, inputs, targets).loss.backward();
    }
    optimizer.step();
    if (profile) *table = profile->table(1);
    std::vector<float> params;
    for (const auto& [name, p] : model->named_parameters()) {
      const std::vector<float> v = p.to_vector<float>();
      params.insert(params.end(), v.begin(), v.end());
    }
    return params;
  };
  std::string table;
  const std::vector<float> plain = step(false, nullptr), profiled = step(true, &table);
  EXPECT_EQ(plain, profiled) << "the same bits with and without the profile";
  expect_mentions(table, {"| gemm bf16 |", "| adamw_step | cpu | 1.0 |", "layernorm_backward", "cross_entropy_forward bf16",
                          "attention_backward causal bf16-allowed", "| all kernels |"});
}

TEST(KernelProfile, OnlyWhileAliveAndOneAtATime) {
  EXPECT_EQ(&backend_for(kCPU), static_cast<Backend*>(&cpu_backend()));
  {
    KernelProfile profile;
    EXPECT_NE(&backend_for(kCPU), static_cast<Backend*>(&cpu_backend())) << "a timing wrapper while profiling";
    EXPECT_EQ(backend_for(kCPU).name(), cpu_backend().name());
    expect_mentions(error_message([] { KernelProfile second; }), {"already running"});
    expect_mentions(error_message([&] { profile.table(0); }), {"steps must be positive"});
  }
  EXPECT_EQ(&backend_for(kCPU), static_cast<Backend*>(&cpu_backend()));
  Backend& kept = [] {
    KernelProfile profile;
    return std::ref(backend_for(kCPU));
  }();
  const Tensor x = ones({3});
  kept.fill(DType::f32, x.raw(), 3, 2.0);  // a wrapper handed out earlier still forwards
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{2, 2, 2}));
}

TEST(KernelProfile, TheWrapperForwardsEveryBackendVirtual) {
  const std::set<std::string> declared = virtual_names(read_source("src/backend/backend.hpp"));
  const std::set<std::string> wrapped = override_names(read_source("src/backend/profiled_backend.cpp"));
  EXPECT_GE(declared.size(), 30u) << "the parse of backend.hpp found too few virtuals";
  for (const std::string& name : declared) {
    if (name == "Backend") continue;  // the destructor
    EXPECT_TRUE(wrapped.count(name)) << "ProfiledBackend does not forward Backend::" << name;
  }
}

}  // namespace
}  // namespace ld::test
