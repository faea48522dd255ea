// Pretraining against PyTorch (tests/train/train_ref.py): the real trainer (train::pretrain) and a
// plain torch float32 loop start from the same weights, see the same batches and run the same
// AdamW with warmup, cosine decay to a floor, weight decay groups, gradient accumulation and
// clipping. Every step's loss must agree to 1e-4 relative, and the final weights closely.
//
// The seams used to give the reference what the trainer sees:
//  - weights: the trainer initialises its model from Generator(train.seed) (model.from gives the
//    config only), so the test builds the same model with the same generator and writes it with
//    save_pretrained; the run's config comes `from:` that folder. Step 1's loss shows they agree.
//  - batches: the trainer's loader is DataLoader(data.path, "train", {batch_size, seq_len,
//    train.seed, shuffle}) from the start (trainer.cpp); the test builds the same one, and for BERT
//    masks micro-batch i with mask_tokens(stream i), the numbering the trainer uses.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "data/dataset_index.hpp"
#include "data/loader.hpp"
#include "data/token_shard.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "test_util.hpp"
#include "train/objectives.hpp"
#include "train/optim_ref.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"

namespace ld::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int32_t kVocab = 96;
constexpr int32_t kEos = 95;
constexpr int32_t kMask = 94;  // BERT's mask id: outside the data's 0..89
constexpr uint64_t kSeed = 7;     // train.seed: the initial weights, the data order, the masking
constexpr double kLossTolerance = 1e-4;  // relative, per step (issue 6)
constexpr double kNormTolerance = 1e-4;  // relative, per step; measured 2e-7 (BERT) to 1.4e-6 (GPT-2)
// Measured 2e-5 to 4e-5; a weight-decayed embedding or an eps of 1e-6 instead of 1e-8 gives 4e-3 or more.
constexpr double kWeightTolerance = 1e-3;

// Documents counting upwards modulo 90 from varying starts: learnable in a few steps by either model.
fs::path make_dataset(const fs::path& dir) {
  fs::create_directories(dir);
  data::DatasetIndex index;
  index.tokenizer = "counting";
  index.vocab_size = kVocab;
  index.eos_id = kEos;
  data::ShardWriter writer(dir / "train-00000.bin", 2);
  for (int d = 0; d < 48; ++d) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((d * 7 + i) % 90);
    writer.append_document(ids, kEos);
  }
  writer.finish();
  index.splits["train"] = {{"train-00000.bin", writer.tokens(), writer.documents()}};
  data::write_dataset_index(dir, index);
  return dir;
}

// The run: 20 steps of 2 micro-batches of 4 x 16 tokens; warmup, cosine to 0.1 x lr, decay 0.1 and
// a clip that some steps exceed and some do not.
RunConfig make_config(const fs::path& init, const fs::path& data, const fs::path& run, const std::string& extra) {
  const std::string yaml = "model:\n  from: " + init.string() + "\ndata:\n  path: " + data.string() + R"(
train:
  batch_size: 4
  seq_len: 16
  grad_accum: 2
  max_steps: 20
  lr: 1e-2
  warmup_steps: 4
  schedule: cosine
  min_lr_ratio: 0.1
  weight_decay: 0.1
  beta1: 0.9
  beta2: 0.95
  eps: 1e-8
  grad_clip: 1.5
  threads: 1
  seed: )" + std::to_string(kSeed) + "\n" + extra + R"(eval:
  every: 0
checkpoint:
  every: 0
  keep_last: 1
output_dir: )" + run.string() + "\n";
  return parse_run_config(yaml, "torch_equivalence.yaml");
}

// The trainer's initial weights (see the top of this file), as a Hugging Face folder.
fs::path write_initial_gpt2(const fs::path& dir) {
  const io::HfModelConfig hf = io::parse_hf_config(
      {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_layer", 2}, {"n_head", 4},
       {"n_embd", 32}, {"vocab_size", kVocab}, {"n_positions", 32}},
      "gpt2 test config");
  Generator gen(kSeed);
  models::save_pretrained(*models::make_causal_lm(hf, gen), hf, dir);
  return dir;
}

fs::path write_initial_bert(const fs::path& dir) {
  const io::HfModelConfig hf = io::parse_hf_config(
      {{"model_type", "bert"}, {"architectures", {"BertForMaskedLM"}}, {"num_hidden_layers", 2},
       {"num_attention_heads", 4}, {"hidden_size", 32}, {"intermediate_size", 64}, {"vocab_size", kVocab},
       {"max_position_embeddings", 32}},
      "bert test config");
  Generator gen(kSeed);
  models::save_pretrained(models::BertForMaskedLM(hf, gen), hf, dir);
  return dir;
}

// The micro-batches the trainer's loader yields, in order (see the top of this file).
std::vector<data::Batch> trainer_batches(const RunConfig& c) {
  const TrainSection& t = c.train;
  data::DataLoader loader(c.data.path, "train",
                          {.batch_size = t.batch_size, .seq_len = t.seq_len, .seed = uint64_t(t.seed),
                           .shuffle = true, .rank = 0, .world_size = 1, .prefetch = 0});
  std::vector<data::Batch> batches;
  for (int64_t i = 0; i < t.max_steps * t.grad_accum; ++i) batches.push_back(loader.next());
  return batches;
}

// [N, B, T] i64 from N tensors [B, T].
Tensor stacked(const std::vector<Tensor>& rows) {
  std::vector<int64_t> all;
  for (const Tensor& r : rows) {
    const std::vector<int64_t> v = r.to_vector<int64_t>();
    all.insert(all.end(), v.begin(), v.end());
  }
  return from_vector(all, {int64_t(rows.size()), rows[0].size(0), rows[0].size(1)});
}

void write_clm_batches(const fs::path& path, const RunConfig& c) {
  std::vector<Tensor> inputs, targets;
  for (const data::Batch& b : trainer_batches(c)) {
    inputs.push_back(b.inputs);
    targets.push_back(b.targets);
  }
  io::save_safetensors(path, {{"inputs", stacked(inputs)}, {"targets", stacked(targets)}});
}

// The trainer's masking (trainer.cpp setup_masking): train.* options, the model's vocabulary, the
// dataset's EOS never masked, micro-batch i masked with stream i.
void write_mlm_batches(const fs::path& path, const RunConfig& c) {
  const MlmMasking masking{.probability = c.train.mlm_probability,
                           .mask_token_id = c.train.mask_token_id,
                           .vocab_size = c.model.hf.stack.vocab_size,
                           .seed = uint64_t(c.train.seed),
                           .never_mask = {kEos}};
  std::vector<Tensor> inputs, labels;
  uint64_t stream = 0;
  for (const data::Batch& b : trainer_batches(c)) {
    const MaskedBatch masked = mask_tokens(b.inputs, masking, stream++);
    inputs.push_back(masked.inputs);
    labels.push_back(masked.labels);
  }
  io::save_safetensors(path, {{"inputs", stacked(inputs)}, {"labels", stacked(labels)}});
}

std::vector<StepReport> run_trainer(const RunConfig& c) {
  std::vector<StepReport> steps;
  TrainOptions options;
  options.print = false;
  options.on_step = [&](const StepReport& r) { steps.push_back(r); };
  pretrain(c, options);
  return steps;
}

// train_ref.py on the run's configuration; fails the test (and returns null) when it cannot run.
json run_reference(const std::string& model, const RunConfig& c, const fs::path& init, const fs::path& batches,
                   const fs::path& dir) {
  const TrainSection& t = c.train;
  const json spec = {{"model", model},
                     {"init", init.string()},
                     {"final", (fs::path(c.output_dir) / "model").string()},
                     {"batches", batches.string()},
                     {"steps", t.max_steps},
                     {"grad_accum", t.grad_accum},
                     {"lr", t.lr},
                     {"warmup_steps", t.warmup_steps},
                     {"max_steps", t.max_steps},
                     {"min_lr_ratio", t.min_lr_ratio},
                     {"schedule", t.schedule},
                     {"weight_decay", t.weight_decay},
                     {"beta1", t.beta1},
                     {"beta2", t.beta2},
                     {"eps", t.eps},
                     {"grad_clip", t.grad_clip}};
  std::ofstream(dir / "spec.json") << spec.dump(2);
  const std::string cmd = std::string(LIANDAN_PYTHON " " LIANDAN_SOURCE_DIR "/tests/train/train_ref.py ") +
                          (dir / "spec.json").string() + " " + (dir / "ref.json").string();
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  if (rc != 0) return nullptr;
  return json::parse(std::ifstream(dir / "ref.json"));
}

double relative_diff(double ours, double theirs) { return std::abs(ours - theirs) / std::abs(theirs); }

// Step by step: loss to kLossTolerance, grad norm to kNormTolerance, the same rate. Returns the
// largest relative loss difference.
double expect_same_steps(const std::vector<StepReport>& ours, const json& ref) {
  const auto losses = ref.at("losses").get<std::vector<double>>();
  const auto norms = ref.at("grad_norms").get<std::vector<double>>();
  const auto lrs = ref.at("lrs").get<std::vector<double>>();
  EXPECT_EQ(ours.size(), losses.size());
  double worst = 0;
  for (size_t s = 0; s < ours.size() && s < losses.size(); ++s) {
    worst = std::max(worst, relative_diff(ours[s].loss, losses[s]));
    EXPECT_LE(relative_diff(ours[s].loss, losses[s]), kLossTolerance)
        << "step " << s + 1 << ": loss " << ours[s].loss << " vs torch " << losses[s]
        << (s == 0 ? " (before any update: the trainer's initial weights or first batch are not the test's)" : "");
    EXPECT_LE(relative_diff(ours[s].grad_norm, norms[s]), kNormTolerance)
        << "step " << s + 1 << ": grad norm " << ours[s].grad_norm << " vs torch " << norms[s];
    EXPECT_NEAR(ours[s].lr, lrs[s], 1e-12 * lrs[s]) << "step " << s + 1;
  }
  return worst;
}

// The run's final model against the reference's final weights: all differences together, relative
// to the reference's whole update, within kWeightTolerance (see train_ref.py's weight_diffs).
void expect_same_final_weights(const json& ref) {
  const double relative = ref.at("relative_weight_diff").get<double>();
  std::cout << "final weights: relative difference " << relative << ", largest difference "
            << ref.at("max_weight_diff").get<double>() << " over " << ref.at("weights_compared") << " tensors\n";
  EXPECT_LT(relative, kWeightTolerance);
}

// Some steps clipped and some not, so both paths of the clip are compared.
void expect_clipping_mixed(const std::vector<StepReport>& steps, double clip) {
  const auto clipped = std::count_if(steps.begin(), steps.end(), [&](const StepReport& r) { return r.grad_norm > clip; });
  EXPECT_GT(clipped, 0) << "no step's gradient norm exceeded train.grad_clip=" << clip;
  EXPECT_LT(size_t(clipped), steps.size()) << "every step was clipped at train.grad_clip=" << clip;
}

void require_torch() {
  ASSERT_TRUE(test::python_has_torch()) << "this test needs PyTorch for " LIANDAN_PYTHON
                                        " (tools/setup-deps.sh --tests installs python3-torch)";
}

TEST(TorchEquivalence, Gpt2TwentyStepsMatchPyTorch) {
  require_torch();
  if (HasFatalFailure()) return;
  test::TempDir tmp("torch_equiv_gpt2");
  const fs::path init = write_initial_gpt2(tmp / "init");
  const RunConfig config = make_config(init, make_dataset(tmp / "data"), tmp / "run", "");
  write_clm_batches(tmp / "batches.safetensors", config);
  const std::vector<StepReport> steps = run_trainer(config);
  const json ref = run_reference("gpt2", config, init, tmp / "batches.safetensors", tmp.path());
  ASSERT_FALSE(ref.is_null());
  const double worst = expect_same_steps(steps, ref);
  std::cout << "GPT-2: max relative loss difference " << worst << "\n";
  expect_same_final_weights(ref);
  expect_clipping_mixed(steps, config.train.grad_clip);
  EXPECT_LT(steps.back().loss, 0.75 * steps.front().loss);  // from ln 96 = 4.56
}

TEST(TorchEquivalence, BertMaskedLmStepsMatchPyTorch) {
  require_torch();
  if (HasFatalFailure()) return;
  test::TempDir tmp("torch_equiv_bert");
  const fs::path init = write_initial_bert(tmp / "init");
  const RunConfig config = make_config(init, make_dataset(tmp / "data"), tmp / "run",
                                       "  mask_token_id: " + std::to_string(kMask) + "\n  mlm_probability: 0.3\n");
  write_mlm_batches(tmp / "batches.safetensors", config);
  const std::vector<StepReport> steps = run_trainer(config);
  const json ref = run_reference("bert", config, init, tmp / "batches.safetensors", tmp.path());
  ASSERT_FALSE(ref.is_null());
  const double worst = expect_same_steps(steps, ref);
  std::cout << "BERT: max relative loss difference " << worst << "\n";
  expect_same_final_weights(ref);
  EXPECT_LT(steps.back().loss, steps.front().loss);
}

}  // namespace
}  // namespace ld::train
