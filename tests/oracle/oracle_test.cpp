// The PyTorch oracle: liandan's GPT-2 and LLaMA stacks (src/models/tiny_transformer) against the
// same math written in plain PyTorch (torch_stacks.py, Debian's python3-torch, run in float64).
// Logits, loss and every parameter gradient must agree to 1e-4 relative. The two sides exchange
// tensors through safetensors files written and read by hand here (src/io does not exist yet).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_util.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "models/tiny_transformer.hpp"
#include "ops/ops.hpp"

namespace ld {
namespace {

namespace fs = std::filesystem;
using models::Params;
using models::StackConfig;
using models::StackKind;

// For each tensor: max|got - want| / max|want|. Elementwise relative error is meaningless for the
// many entries near zero (a gradient entry of 1e-9 may differ by 100% and not matter), so the error
// is measured against the tensor's largest magnitude.
constexpr double kTolerance = 1e-4;

const char* const kPython = LIANDAN_ORACLE_PYTHON;
const fs::path kScript = fs::path(LIANDAN_SOURCE_DIR) / "tests" / "oracle" / "torch_stacks.py";

// --- safetensors, by hand: u64 LE header length, JSON header, raw little-endian data

struct TensorFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::i64: return "I64";
    default: LD_FAIL("oracle safetensors: unsupported dtype ", dtype_name(dtype));
  }
}

DType dtype_from_safetensors(const std::string& name) {
  if (name == "F32") return DType::f32;
  if (name == "I64") return DType::i64;
  LD_FAIL("oracle safetensors: unsupported dtype ", name);
}

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> data;
  size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    Tensor t = tensor.detach().contiguous();
    header[name] = {{"dtype", safetensors_dtype(t.dtype())}, {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    data.push_back(t);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  uint64_t length = text.size();  // the format is little-endian, like every machine we build for
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const Tensor& t : data) out.write(static_cast<const char*>(t.raw()), std::streamsize(t.nbytes()));
  LD_CHECK(out.good(), "oracle: cannot write ", path.string());
}

TensorFile read_safetensors(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), "oracle: cannot open ", path.string());
  std::string blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LD_CHECK(blob.size() >= 8, "oracle: ", path.string(), " is too short for a safetensors file");
  uint64_t length = 0;
  std::memcpy(&length, blob.data(), 8);
  LD_CHECK(8 + length <= blob.size(), "oracle: ", path.string(), ": header length ", length, " exceeds the file");
  const nlohmann::json header = nlohmann::json::parse(blob.substr(8, length));
  const size_t data_start = 8 + length;

  TensorFile file;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      file.metadata = info.get<std::map<std::string, std::string>>();
      continue;
    }
    const auto begin = info["data_offsets"][0].get<size_t>(), end = info["data_offsets"][1].get<size_t>();
    Tensor t = empty(info["shape"].get<Shape>(), dtype_from_safetensors(info["dtype"].get<std::string>()));
    LD_CHECK(end - begin == t.nbytes() && data_start + end <= blob.size(), "oracle: ", path.string(), ": tensor '",
             name, "' has offsets [", begin, ", ", end, ") that do not fit its shape or the file");
    if (t.nbytes() > 0) std::memcpy(t.raw(), blob.data() + data_start + begin, t.nbytes());
    file.tensors.emplace(name, t);
  }
  return file;
}

// --- comparison

double relative_error(const Tensor& got, const Tensor& want) {
  std::vector<float> a = got.to_vector<float>(), b = want.to_vector<float>();
  double max_diff = 0, max_want = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double(a[i]) - double(b[i])));
    max_want = std::max(max_want, std::abs(double(b[i])));
  }
  return max_want > 0 ? max_diff / max_want : max_diff;
}

// Collects (name, error) pairs and reports the worst ones when any exceeds the tolerance.
class Comparison {
 public:
  void add(const std::string& name, const Tensor& got, const Tensor& want) {
    if (!got.defined()) return problems_.push_back(name + ": liandan produced no tensor (no gradient?)");
    if (!want.defined()) return problems_.push_back(name + ": the reference has no such tensor");
    if (got.shape() != want.shape())
      return problems_.push_back(name + ": shape " + shape_str(got.shape()) + " vs reference " +
                                 shape_str(want.shape()));
    errors_.emplace_back(relative_error(got, want), name);
  }
  void expect_within(double tolerance) {
    std::sort(errors_.rbegin(), errors_.rend());
    std::ostringstream worst;
    for (size_t i = 0; i < errors_.size() && i < 6; ++i)
      worst << "\n  " << errors_[i].second << ": " << std::scientific << std::setprecision(2) << errors_[i].first;
    for (const std::string& p : problems_) ADD_FAILURE() << p;
    ASSERT_FALSE(errors_.empty()) << "nothing was compared";
    EXPECT_LE(errors_.front().first, tolerance)
        << "max|a-b|/max|b| above " << tolerance << "; worst tensors:" << worst.str();
    std::cout << "compared " << errors_.size() << " tensors; worst:" << worst.str() << "\n";
  }

 private:
  std::vector<std::pair<double, std::string>> errors_;
  std::vector<std::string> problems_;
};

// --- running Python

std::string quoted(const fs::path& p) {
  std::ostringstream os;  // not "'" + s: GCC 12 warns (falsely) about an overlapping memcpy there
  os << '\'' << p.string() << '\'';
  return os.str();
}

bool run_python(const std::string& args) {
  const std::string command = std::string("OMP_NUM_THREADS=2 ") + kPython + " " + quoted(kScript) + " " + args;
  return std::system(command.c_str()) == 0;
}

// Never skip silently: a missing oracle is a failure that says how to fix it.
bool torch_importable() {
  static const bool importable = [] {  // once per process: importing torch takes a second or two
    const std::string probe = std::string(kPython) + " -c 'import torch' >/dev/null 2>&1";
    return std::system(probe.c_str()) == 0;
  }();
  return importable;
}
#define ASSERT_TORCH_AVAILABLE()                                                                     \
  ASSERT_TRUE(torch_importable()) << kPython << " cannot import torch. The PyTorch oracle needs "   \
                                  << "Debian's python3-torch: apt-get install python3-torch"

Tensor random_ids(const Shape& shape, int64_t vocab, Generator& gen) {
  std::vector<float> u = rand(shape, &gen).to_vector<float>();
  std::vector<int64_t> ids(u.size());
  for (size_t i = 0; i < u.size(); ++i) ids[i] = std::min<int64_t>(int64_t(u[i] * float(vocab)), vocab - 1);
  return from_vector(ids, shape);
}

std::string exact(double v) {
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}

std::map<std::string, std::string> config_metadata(const StackConfig& c) {
  return {{"kind", c.kind == StackKind::gpt2 ? "gpt2" : "llama"},
          {"n_layer", std::to_string(c.n_layer)},
          {"n_head", std::to_string(c.n_head)},
          {"n_kv_head", std::to_string(c.n_kv_head)},
          {"n_embd", std::to_string(c.n_embd)},
          {"vocab_size", std::to_string(c.vocab_size)},
          {"n_positions", std::to_string(c.n_positions)},
          {"intermediate_size", std::to_string(c.intermediate_size)},
          {"norm_eps", exact(c.norm_eps)},
          {"rope_theta", exact(c.rope_theta)}};
}

// --- the stacks against PyTorch

struct StackCase {
  StackKind kind;
  int64_t seq_len;
};
std::string case_name(const StackCase& c) {
  return std::string(c.kind == StackKind::gpt2 ? "Gpt2" : "Llama") + "_T" + std::to_string(c.seq_len);
}
void PrintTo(const StackCase& c, std::ostream* os) { *os << case_name(c); }

StackConfig small_config(StackKind kind) {
  StackConfig c;
  c.kind = kind;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = kind == StackKind::llama ? 2 : 4;
  c.n_embd = 64;
  c.vocab_size = 97;
  c.n_positions = 32;
  c.intermediate_size = 172;
  c.norm_eps = kind == StackKind::llama ? 1e-6 : 1e-5;
  return c;
}

class StackOracle : public ::testing::TestWithParam<StackCase> {};

TEST_P(StackOracle, LogitsLossAndEveryGradientMatchPyTorch) {
  ASSERT_TORCH_AVAILABLE();
  const StackConfig config = small_config(GetParam().kind);
  const int64_t batch = 2, seq = GetParam().seq_len;

  // std 0.1 rather than GPT-2's 0.02 so that attention is far from uniform and the logits spread.
  Generator gen(1234);
  const Params params = models::init_params(config, gen, {.std = 0.1, .norm_and_bias_jitter = 0.1});
  const Tensor ids = random_ids({batch, seq}, config.vocab_size, gen);
  const Tensor targets = random_ids({batch, seq}, config.vocab_size, gen);

  const Tensor logits = models::forward_logits(config, params, ids);
  const Tensor loss = ops::cross_entropy(logits, targets);
  loss.backward();

  test::TempDir dir("liandan_oracle");
  std::vector<std::pair<std::string, Tensor>> inputs(params.begin(), params.end());
  inputs.emplace_back("ids", ids);
  inputs.emplace_back("targets", targets);
  write_safetensors(dir.path() / "in.safetensors", inputs, config_metadata(config));
  ASSERT_TRUE(run_python(quoted(dir.path() / "in.safetensors") + " " + quoted(dir.path() / "out.safetensors")))
      << "torch_stacks.py failed (its error is above)";
  const TensorFile reference = read_safetensors(dir.path() / "out.safetensors");
  auto ref = [&](const std::string& name) {
    auto it = reference.tensors.find(name);
    return it == reference.tensors.end() ? Tensor() : it->second;
  };

  // against PyTorch in float64 (the exact answer) and in float32 (what a PyTorch user gets)
  for (const std::string prefix : {"", "f32."}) {
    SCOPED_TRACE(prefix.empty() ? "PyTorch float64" : "PyTorch float32");
    Comparison comparison;
    comparison.add("logits", logits, ref(prefix + "logits"));
    comparison.add("loss", loss, ref(prefix + "loss"));
    for (const auto& [name, p] : params) comparison.add("grad." + name, p.grad(), ref(prefix + "grad." + name));
    comparison.expect_within(kTolerance);
  }
}

INSTANTIATE_TEST_SUITE_P(Stacks, StackOracle,
                         ::testing::Values(StackCase{StackKind::gpt2, 16}, StackCase{StackKind::gpt2, 13},
                                           StackCase{StackKind::llama, 16}, StackCase{StackKind::llama, 13}),
                         [](const ::testing::TestParamInfo<StackCase>& c) { return case_name(c.param); });

// --- the file format both ways, independent of the model ops

TEST(OracleFormat, RoundTripsInCppAndThroughPython) {
  ASSERT_TORCH_AVAILABLE();
  Generator gen(7);
  const std::vector<std::pair<std::string, Tensor>> tensors = {
      {"a", randn({3, 5}, &gen)}, {"scalar", scalar_tensor(2.5)}, {"ids", random_ids({2, 7}, 1000, gen)},
      {"transposed", randn({4, 6}, &gen).transpose(0, 1)}, {"empty", empty({0, 3})}};
  const std::map<std::string, std::string> metadata = {{"kind", "gpt2"}, {"norm_eps", exact(1e-5)}};

  test::TempDir dir("liandan_oracle");
  write_safetensors(dir.path() / "a.safetensors", tensors, metadata);
  const TensorFile same = read_safetensors(dir.path() / "a.safetensors");
  ASSERT_TRUE(run_python("--echo " + quoted(dir.path() / "a.safetensors") + " " + quoted(dir.path() / "b.safetensors")));
  const TensorFile echoed = read_safetensors(dir.path() / "b.safetensors");

  EXPECT_EQ(same.metadata, metadata);
  EXPECT_EQ(echoed.metadata, metadata);
  for (const auto& [name, t] : tensors) {
    for (const Tensor& back : {same.tensors.at(name), echoed.tensors.at("echo." + name)}) {
      ASSERT_EQ(back.dtype(), t.dtype()) << name;
      ASSERT_EQ(back.shape(), t.shape()) << name;
      if (t.dtype() == DType::i64)
        EXPECT_EQ(back.to_vector<int64_t>(), t.to_vector<int64_t>()) << name;
      else
        EXPECT_EQ(back.to_vector<float>(), t.to_vector<float>()) << name;
    }
  }
}

// --- fused ops against their unfused composition, so that a broken fused path cannot hide behind
// the oracle's tolerance or behind a stack that happens not to use it. The norms are composed from
// elementwise ops and reductions rather than ops::layernorm / ops::rmsnorm, which may share the
// fused kernel and would then agree with it however wrong it was.

Tensor composed_layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  Tensor centred = ops::sub(x, ops::mean(x, {-1}, true));
  Tensor variance = ops::mean(ops::mul(centred, centred), {-1}, true);
  return ops::add(ops::mul(ops::div(centred, ops::sqrt(ops::add_scalar(variance, eps))), weight), bias);
}

Tensor composed_rmsnorm(const Tensor& x, const Tensor& weight, double eps) {
  Tensor mean_square = ops::mean(ops::mul(x, x), {-1}, true);
  return ops::mul(ops::div(x, ops::sqrt(ops::add_scalar(mean_square, eps))), weight);
}

struct Leaves {
  std::vector<Tensor> tensors;
  Tensor add(Tensor t) {
    t.set_requires_grad(true);
    tensors.push_back(t);
    return t;
  }
};

// Runs `build` (which returns the outputs) on fresh copies of `inputs`, backpropagates a fixed random
// weighting of every output, and returns the outputs followed by the input gradients.
template <typename Build>
std::vector<Tensor> outputs_and_grads(const std::vector<Tensor>& inputs, Build build) {
  Leaves leaves;
  std::vector<Tensor> args;
  for (const Tensor& t : inputs) args.push_back(leaves.add(t.clone()));
  std::vector<Tensor> outs = build(args);
  Generator gen(99);
  Tensor objective;
  for (const Tensor& o : outs) {
    Tensor term = ops::sum(ops::mul(o, randn(o.shape(), &gen)));
    objective = objective.defined() ? ops::add(objective, term) : term;
  }
  objective.backward();
  std::vector<Tensor> result;
  for (const Tensor& o : outs) result.push_back(o.detach());
  for (const Tensor& leaf : leaves.tensors) result.push_back(leaf.grad());
  return result;
}

template <typename Fused, typename Composed>
void expect_fused_matches_composed(const std::vector<Tensor>& inputs, Fused fused, Composed composed) {
  const std::vector<Tensor> a = outputs_and_grads(inputs, fused);
  const std::vector<Tensor> b = outputs_and_grads(inputs, composed);
  ASSERT_EQ(a.size(), b.size());
  Comparison comparison;
  for (size_t i = 0; i < a.size(); ++i) comparison.add("result " + std::to_string(i), a[i], b[i]);
  comparison.expect_within(kTolerance);
}

// Last dim 100: not a multiple of any vector width, so the kernels' tails are exercised.
const Shape kNormShape = {3, 5, 100};

TEST(FusedOps, AddLayernormMatchesComposition) {
  Generator gen(3);
  const std::vector<Tensor> inputs = {randn(kNormShape, &gen), randn(kNormShape, &gen),
                                      normal({100}, 1.0f, 0.3f, &gen), normal({100}, 0.0f, 0.3f, &gen)};
  expect_fused_matches_composed(
      inputs,
      [](const std::vector<Tensor>& x) {
        ops::ResidualNorm r = ops::add_layernorm(x[0], x[1], x[2], x[3], 1e-5);
        return std::vector<Tensor>{r.sum, r.normed};
      },
      [](const std::vector<Tensor>& x) {
        Tensor sum = ops::add(x[0], x[1]);
        return std::vector<Tensor>{sum, composed_layernorm(sum, x[2], x[3], 1e-5)};
      });
}

TEST(FusedOps, AddRmsnormMatchesComposition) {
  Generator gen(4);
  const std::vector<Tensor> inputs = {randn(kNormShape, &gen), randn(kNormShape, &gen),
                                      normal({100}, 1.0f, 0.3f, &gen)};
  expect_fused_matches_composed(
      inputs,
      [](const std::vector<Tensor>& x) {
        ops::ResidualNorm r = ops::add_rmsnorm(x[0], x[1], x[2], 1e-6);
        return std::vector<Tensor>{r.sum, r.normed};
      },
      [](const std::vector<Tensor>& x) {
        Tensor sum = ops::add(x[0], x[1]);
        return std::vector<Tensor>{sum, composed_rmsnorm(sum, x[2], 1e-6)};
      });
}

TEST(FusedOps, SwigluMatchesSiluTimesUp) {
  Generator gen(5);
  const std::vector<Tensor> inputs = {randn(kNormShape, &gen), randn(kNormShape, &gen)};
  expect_fused_matches_composed(
      inputs, [](const std::vector<Tensor>& x) { return std::vector<Tensor>{ops::swiglu(x[0], x[1])}; },
      [](const std::vector<Tensor>& x) { return std::vector<Tensor>{ops::mul(ops::silu(x[0]), x[1])}; });
}

}  // namespace
}  // namespace ld
