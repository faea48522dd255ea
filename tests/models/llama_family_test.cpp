// LLaMA, Mistral and Qwen2 through Hugging Face folders against an independent float64 PyTorch
// reference (llama_family_ref.py, written from transformers' modeling math): the reference writes a
// folder as transformers' save_pretrained would, liandan loads it with load_causal_lm and must give
// the reference's logits, for one sequence and for a left-padded batch with an attention mask.
// Then save_pretrained -> load_causal_lm is bit-exact and the reference reads liandan's folder, and
// batched, cached generation equals generating each prompt alone and recomputing every step.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld::models {
namespace {

using test::max_abs_diff;

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kTolerance = 1e-4;  // max |ours - reference| / max |reference|

// Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on `"\"" + std::string`.
std::string quoted(const fs::path& p) {
  std::string s = "\"";
  s.append(p.string()).append("\"");
  return s;
}

bool have_torch() { return std::system(LIANDAN_PYTHON " -c \"import torch\" >/dev/null 2>&1") == 0; }

// Runs llama_family_ref.py with `args`; true when it succeeded.
bool run_reference(const std::string& args) {
  const std::string cmd = std::string(LIANDAN_PYTHON) + " " +
                          quoted(fs::path(LIANDAN_SOURCE_DIR) / "tests/models/llama_family_ref.py") + " " + args;
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#define REQUIRE_TORCH()                                                                            \
  if (!have_torch()) GTEST_SKIP() << "needs PyTorch for the reference: apt-get install python3-torch"

Tensor read_tensor(const fs::path& file, const std::string& name) {
  return io::SafetensorsFile::open(file).get(name).contiguous();
}

json read_json(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in);
}

void write_json(const fs::path& file, const json& j) {
  std::ofstream out(file);
  out << j.dump(2);
}

// max |ours - ref| / max |ref| over the positions [B, T] where mask is 1 (all when undefined).
double relative_error(const Tensor& ours, const Tensor& ref, const Tensor& mask = Tensor()) {
  if (ours.shape() != ref.shape()) {
    ADD_FAILURE() << "shape " << shape_str(ours.shape()) << " != reference " << shape_str(ref.shape());
    return std::numeric_limits<double>::infinity();
  }
  const std::vector<float> a = ours.to(DType::f32).contiguous().to_vector<float>();
  const std::vector<float> b = ref.to(DType::f32).contiguous().to_vector<float>();
  const int64_t B = ref.size(0), T = ref.size(1), V = ref.size(2);
  const std::vector<int64_t> keep = mask.defined() ? mask.to(DType::i64).contiguous().to_vector<int64_t>()
                                                   : std::vector<int64_t>(size_t(B * T), 1);
  double diff = 0, scale = 0;
  for (int64_t bt = 0; bt < B * T; ++bt) {
    if (keep[size_t(bt)] == 0) continue;
    for (int64_t v = 0; v < V; ++v) {
      const size_t i = size_t(bt * V + v);
      diff = std::max(diff, double(std::abs(a[i] - b[i])));
      scale = std::max(scale, double(std::abs(b[i])));
    }
  }
  return diff / scale;
}

// The reference's inputs (ids [1, T]; batch_ids/batch_mask [3, T], left padded) and logits.
struct Case {
  fs::path dir;
  Tensor ids, batch_ids, batch_mask;
  fs::path reference() const { return dir / "reference.safetensors"; }
  fs::path inputs() const { return dir / "inputs.safetensors"; }
};

Case make_case(const std::string& variant, const fs::path& dir) {
  Case c;
  c.dir = dir;
  EXPECT_TRUE(run_reference("make " + variant + " " + quoted(dir))) << "the reference failed for " << variant;
  c.ids = read_tensor(c.inputs(), "ids");
  c.batch_ids = read_tensor(c.inputs(), "batch_ids");
  c.batch_mask = read_tensor(c.inputs(), "batch_mask");
  return c;
}

// The reference's folder for a variant, made once per run (the reference takes seconds to start)
// and only read afterwards.
const Case& reference_case(const std::string& variant) {
  static test::TempDir root("llama_family_ref");
  static std::map<std::string, Case> cases;
  auto it = cases.find(variant);
  if (it == cases.end()) it = cases.emplace(variant, make_case(variant, root / variant)).first;
  return it->second;
}

// The reference's logits (single, batch) for a folder, e.g. one liandan wrote.
std::pair<Tensor, Tensor> reference_logits_of(const fs::path& folder, const Case& c, const fs::path& out) {
  EXPECT_TRUE(run_reference("forward " + quoted(folder) + " " + quoted(c.inputs()) + " " + quoted(out)));
  return {read_tensor(out, "logits"), read_tensor(out, "batch_logits")};
}

std::string model_type_of(const std::string& variant) { return variant == "llama_tied" ? "llama" : variant; }

class LlamaFamilyReference : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaFamilyReference, LogitsMatchTorchForOneSequenceAndALeftPaddedBatch) {
  REQUIRE_TORCH();
  const Case& c = reference_case(GetParam());
  auto lm = load_causal_lm(c.dir);
  EXPECT_EQ(lm->hf_config().model_type, model_type_of(GetParam()));

  const Tensor logits = lm->forward(c.ids);
  EXPECT_LE(relative_error(logits, read_tensor(c.reference(), "logits")), kTolerance);
  // Uneven rows, left padded: only the real positions are compared (padding rows are junk in HF too).
  const Tensor batch = lm->forward(c.batch_ids, nullptr, c.batch_mask);
  EXPECT_LE(relative_error(batch, read_tensor(c.reference(), "batch_logits"), c.batch_mask), kTolerance);
}

TEST_P(LlamaFamilyReference, SavePretrainedReloadsBitExactAndTorchReadsTheFolder) {
  REQUIRE_TORCH();
  test::TempDir tmp("llama_family");
  const Case& c = reference_case(GetParam());
  auto lm = load_causal_lm(c.dir);
  const fs::path saved = tmp / "saved";
  save_pretrained(*lm, lm->hf_config(), saved);
  auto again = load_causal_lm(saved);

  const Tensor logits = lm->forward(c.ids), batch = lm->forward(c.batch_ids, nullptr, c.batch_mask);
  EXPECT_EQ(max_abs_diff(again->forward(c.ids), logits), 0.0f);
  EXPECT_EQ(max_abs_diff(again->forward(c.batch_ids, nullptr, c.batch_mask), batch), 0.0f);

  // The same tensors under the same names and shapes as the transformers-style folder, same bytes.
  const io::SafetensorsFile original = io::SafetensorsFile::open(c.dir / "model.safetensors");
  const io::SafetensorsFile ours = io::SafetensorsFile::open(saved / "model.safetensors");
  std::map<std::string, Shape> want, got;
  for (const io::TensorInfo& t : original.tensors()) want[t.name] = t.shape;
  for (const io::TensorInfo& t : ours.tensors()) {
    got[t.name] = t.shape;
    EXPECT_EQ(t.dtype, DType::f32) << t.name;
  }
  EXPECT_EQ(got, want);
  for (const auto& [name, shape] : want)
    if (got.count(name)) {
      EXPECT_EQ(max_abs_diff(ours.get(name), original.get(name)), 0.0f) << name;
    }

  // config.json: the fields transformers' config class needs, with the original's values.
  const json in = read_json(c.dir / "config.json"), out = read_json(saved / "config.json");
  for (const char* key : {"model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
                          "rope_theta", "rms_norm_eps", "tie_word_embeddings", "hidden_act", "torch_dtype",
                          "bos_token_id", "eos_token_id"}) {
    ASSERT_TRUE(out.contains(key)) << "saved config.json lacks " << key << ": " << out.dump();
    EXPECT_EQ(out[key], in[key]) << key;
  }
  if (GetParam() == "mistral") {
    EXPECT_EQ(out["sliding_window"], in["sliding_window"]);
  }
  if (GetParam() == "qwen2") {
    EXPECT_EQ(out["use_sliding_window"], false);
  }
  EXPECT_TRUE(fs::exists(saved / "generation_config.json"));

  // The reference reproduces liandan's logits from liandan's folder alone.
  const auto [ref, ref_batch] = reference_logits_of(saved, c, tmp / "from_saved.safetensors");
  EXPECT_LE(relative_error(logits, ref), kTolerance);
  EXPECT_LE(relative_error(batch, ref_batch, c.batch_mask), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(LlamaFamily, LlamaFamilyReference,
                         ::testing::Values("llama", "llama_tied", "qwen2", "mistral"));

// Mistral's sliding window (4 slots, sequences of 11) changes the logits, liandan computes the
// windowed ones, and without the window (sliding_window null) it computes the unwindowed ones.
// A window of T-1 still cuts one pair (query T-1, key 0); a window of T cuts nothing.
TEST(LlamaFamilyMistral, TheSlidingWindowMattersAndItsEdgeIsHuggingFaces) {
  REQUIRE_TORCH();
  test::TempDir tmp("llama_family");
  const Case& c = reference_case("mistral");
  const Tensor windowed = read_tensor(c.reference(), "logits");
  const Tensor plain = read_tensor(c.reference(), "nowindow_logits");
  const Tensor plain_batch = read_tensor(c.reference(), "nowindow_batch_logits");
  ASSERT_GT(relative_error(plain, windowed), 100 * kTolerance) << "the window makes no difference: a weak test";
  ASSERT_GT(relative_error(plain_batch, read_tensor(c.reference(), "batch_logits"), c.batch_mask), 100 * kTolerance);

  auto lm = load_causal_lm(c.dir);
  EXPECT_EQ(lm->hf_config().sliding_window, 4);
  EXPECT_GT(relative_error(lm->forward(c.ids), plain), 100 * kTolerance);

  const int64_t T = c.ids.size(1);
  for (const json& window : {json(nullptr), json(T), json(T - 1)}) {
    SCOPED_TRACE("sliding_window " + window.dump());
    const fs::path dir = tmp / ("window_" + window.dump());
    fs::create_directories(dir);
    fs::copy_file(c.dir / "model.safetensors", dir / "model.safetensors");
    json config = read_json(c.dir / "config.json");
    config["sliding_window"] = window;
    write_json(dir / "config.json", config);
    auto variant = load_causal_lm(dir);
    EXPECT_EQ(variant->hf_config().sliding_window, window.is_null() ? 0 : window.get<int64_t>());
    const auto [ref, ref_batch] = reference_logits_of(dir, c, tmp / ("ref_" + window.dump() + ".safetensors"));
    const Tensor ours = variant->forward(c.ids);
    EXPECT_LE(relative_error(ours, ref), kTolerance);
    EXPECT_LE(relative_error(variant->forward(c.batch_ids, nullptr, c.batch_mask), ref_batch, c.batch_mask),
              kTolerance);
    if (window.is_null() || window == json(T)) {
      EXPECT_LE(relative_error(ours, plain), kTolerance);
    } else {
      EXPECT_GT(relative_error(ours, plain), 100 * kTolerance);
    }
  }
}

// transformers' MistralConfig: an absent sliding_window is 4096, but null means no window (Mistral 7B
// v0.2 and later say null), and liandan writes null for a model without one: it must read back so.
TEST(LlamaFamilyMistral, ANullSlidingWindowMeansNoWindowAndSurvivesSaving) {
  json j = {{"model_type", "mistral"}, {"hidden_size", 32},        {"intermediate_size", 48},
            {"num_hidden_layers", 1},  {"num_attention_heads", 4}, {"num_key_value_heads", 2},
            {"vocab_size", 50},        {"sliding_window", nullptr}};
  EXPECT_EQ(io::parse_hf_config(j, "config.json").sliding_window, 0);
  j.erase("sliding_window");
  EXPECT_EQ(io::parse_hf_config(j, "config.json").sliding_window, 4096);
  j["sliding_window"] = 7;
  EXPECT_EQ(io::parse_hf_config(j, "config.json").sliding_window, 7);

  j["sliding_window"] = nullptr;
  const io::HfModelConfig none = io::parse_hf_config(j, "config.json");
  Generator gen(3);
  auto lm = make_causal_lm(none, gen);
  test::TempDir tmp("llama_family");
  save_pretrained(*lm, none, tmp / "saved");
  EXPECT_EQ(read_json(tmp / "saved" / "config.json")["sliding_window"], json(nullptr));
  EXPECT_EQ(load_causal_lm(tmp / "saved")->hf_config().sliding_window, 0);
}

// --- generation

std::vector<std::vector<int64_t>> uneven_prompts(int64_t vocab) {
  std::vector<std::vector<int64_t>> prompts;
  uint64_t s = 12345;
  for (size_t n : {9u, 3u, 6u, 1u}) {
    std::vector<int64_t> p(n);
    for (auto& x : p) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      x = int64_t((s >> 33) % uint64_t(vocab));
    }
    prompts.push_back(p);
  }
  return prompts;
}

// Greedy decoding by running the whole sequence again at every step (no cache, no mask).
std::vector<int32_t> greedy_recompute(const CausalLM& lm, std::vector<int64_t> ids, int64_t steps) {
  std::vector<int32_t> out;
  for (int64_t s = 0; s < steps; ++s) {
    const Tensor logits = lm.forward(from_vector(ids, {1, int64_t(ids.size())}));
    const int64_t next = ops::argmax(logits.narrow(1, logits.size(1) - 1, 1), -1).contiguous().to_vector<int64_t>()[0];
    out.push_back(int32_t(next));
    ids.push_back(next);
  }
  return out;
}

infer::GenerateOptions greedy(int64_t steps) {
  infer::GenerateOptions o;
  o.max_new_tokens = steps;
  o.sampling.temperature = 0.0f;
  return o;
}

class LlamaFamilyGenerate : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaFamilyGenerate, BatchedRowsEqualEachPromptAloneAndRecomputation) {
  REQUIRE_TORCH();
  const Case& c = reference_case(GetParam());
  auto lm = load_causal_lm(c.dir);
  const auto prompts = uneven_prompts(lm->config().vocab_size);
  const int64_t steps = 8;  // with Mistral's window of 4 most steps attend through the window

  const auto batch = infer::generate_batch(*lm, prompts, greedy(steps));
  ASSERT_EQ(batch.size(), prompts.size());
  for (size_t r = 0; r < prompts.size(); ++r) {
    SCOPED_TRACE("row " + std::to_string(r));
    const auto alone = infer::generate(*lm, prompts[r], greedy(steps));
    EXPECT_EQ(alone.size(), size_t(steps));
    EXPECT_EQ(batch[r], alone);
    EXPECT_EQ(alone, greedy_recompute(*lm, prompts[r], steps));
  }
}

// With eos_id a token that some row produces early and another never does, that row ends with it
// (EOS included, as HF returns it) while the other runs to max_new_tokens, unchanged.
TEST_P(LlamaFamilyGenerate, ARowHittingEosStopsWhileTheOthersContinue) {
  REQUIRE_TORCH();
  const Case& c = reference_case(GetParam());
  auto lm = load_causal_lm(c.dir);
  const auto prompts = uneven_prompts(lm->config().vocab_size);
  const int64_t steps = 8;
  const auto free_run = infer::generate_batch(*lm, prompts, greedy(steps));

  auto cut_at = [](const std::vector<int32_t>& tokens, int32_t eos) {
    auto it = std::find(tokens.begin(), tokens.end(), eos);
    return std::vector<int32_t>(tokens.begin(), it == tokens.end() ? tokens.end() : it + 1);
  };
  std::optional<int32_t> eos;
  for (const auto& row : free_run)
    for (size_t i = 0; i + 1 < row.size() && !eos; ++i) {
      const bool someone_never = std::any_of(free_run.begin(), free_run.end(), [&](const auto& other) {
        return std::find(other.begin(), other.end(), row[i]) == other.end();
      });
      if (someone_never) eos = row[i];
    }
  ASSERT_TRUE(eos.has_value()) << "no token ends one row early while another never produces it";

  infer::GenerateOptions options = greedy(steps);
  options.eos_ids = {*eos};
  std::vector<std::vector<int32_t>> streamed(prompts.size());
  const auto stopped = infer::generate_batch(*lm, prompts, options,
                                             [&](int64_t row, int32_t token) { streamed[size_t(row)].push_back(token); });
  size_t early = 0, full = 0;
  for (size_t r = 0; r < prompts.size(); ++r) {
    SCOPED_TRACE("row " + std::to_string(r));
    EXPECT_EQ(stopped[r], cut_at(free_run[r], *eos));
    EXPECT_EQ(streamed[r], stopped[r]);
    early += stopped[r].size() < size_t(steps) && stopped[r].back() == *eos ? 1 : 0;
    full += stopped[r].size() == size_t(steps) ? 1 : 0;
  }
  EXPECT_GE(early, 1u);
  EXPECT_GE(full, 1u);
}

INSTANTIATE_TEST_SUITE_P(LlamaFamily, LlamaFamilyGenerate, ::testing::Values("llama", "qwen2", "mistral"));

}  // namespace
}  // namespace ld::models
