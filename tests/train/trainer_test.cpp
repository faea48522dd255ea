// The pretraining loop on tiny models and a tiny prepared dataset with a learnable pattern: the loss
// falls, metrics.jsonl and the run folder have what plot and resume read, a resume continues exactly,
// a diverged loss stops the run and keeps the last good checkpoint, keep_last prunes.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/trainer_fixture.hpp"
#include "train/checkpoint.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"

namespace ld::train {
namespace {

namespace fs = std::filesystem;

using namespace fixture;

void expect_learns(const char* model_yaml) {
  test::TempDir tmp("trainer");
  const fs::path data = make_dataset(tmp / "data");
  const RunConfig config = make_config(model_yaml, data, tmp / "run", {});
  const TrainResult result = pretrain(config, quiet());
  ASSERT_EQ(result.step, 30);
  ASSERT_EQ(result.losses.size(), 30u);
  EXPECT_NEAR(result.losses.front(), std::log(double(kVocab)), 0.5);  // random init: about uniform
  // The pattern is predictable except after EOS (1 token in 41): the loss ends far below ln 16.
  EXPECT_LT(result.losses.back(), 0.8);
  ASSERT_EQ(result.val_losses.size(), 3u);
  EXPECT_LT(result.val_losses.back(), 0.8);
  EXPECT_LT(result.val_losses.back(), result.val_losses.front());

  // metrics.jsonl: the field names plot reads.
  const auto lines = read_jsonl(tmp / "run" / "metrics.jsonl");
  int train_lines = 0, eval_lines = 0;
  for (const auto& l : lines) {
    if (l["type"] == "train") {
      ++train_lines;
      for (const char* key : {"step", "loss", "lr", "tokens_per_s", "tokens", "grad_norm"})
        EXPECT_TRUE(l.contains(key)) << key;
      EXPECT_EQ(l["loss"].get<double>(), result.losses[size_t(l["step"].get<int64_t>() - 1)]);
      EXPECT_EQ(l["tokens"].get<int64_t>(), l["step"].get<int64_t>() * 4 * 16);
    } else if (l["type"] == "eval") {
      ++eval_lines;
      EXPECT_NEAR(l["val_ppl"].get<double>(), std::exp(l["val_loss"].get<double>()), 1e-9);
    }
  }
  EXPECT_EQ(train_lines, 30);
  EXPECT_EQ(eval_lines, 3);
  EXPECT_TRUE(fs::exists(tmp / "run" / "resolved.yaml"));

  // Checkpoints at 10, 20, 30 with keep_last 2; each a model folder that loads on its own.
  const auto kept = list_checkpoints(tmp / "run");
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].first, 20);
  EXPECT_EQ(kept[1].first, 30);
  EXPECT_EQ(result.last_checkpoint, kept[1].second);
  const TrainerState state = read_trainer_state(kept[1].second);
  EXPECT_EQ(state.step, 30);
  EXPECT_EQ(state.tokens_seen, 30 * 4 * 16);
  EXPECT_NEAR(state.best_val_loss, *std::min_element(result.val_losses.begin(), result.val_losses.end()), 1e-12);
  EXPECT_TRUE(fs::exists(kept[1].second / "optimizer.safetensors"));

  // The final model in RUN/model equals the last checkpoint's, and predicts the pattern.
  auto final_model = models::load_causal_lm(tmp / "run" / "model");
  auto checkpoint_model = models::load_causal_lm(kept[1].second);
  // generation stops where the training documents ended: the dataset's EOS, not GPT-2's 50256
  EXPECT_EQ(final_model->hf_config().eos_token_ids, std::vector<int64_t>{kEos});
  const Tensor ids = from_vector<int64_t>({3, 4, 5, 6, 7, 8}, {1, 6});
  const Tensor a = final_model->forward(ids), b = checkpoint_model->forward(ids);
  EXPECT_EQ(test::max_abs_diff(a, b), 0.0);
  const std::vector<float> logits = a.to_vector<float>();
  int correct = 0;
  for (int t = 0; t < 6; ++t) {
    int best = 0;
    for (int v = 1; v < kVocab; ++v)
      if (logits[size_t(t * kVocab + v)] > logits[size_t(t * kVocab + best)]) best = v;
    correct += best == (4 + t) % 10;
  }
  EXPECT_GE(correct, 5);
}

TEST(Trainer, Gpt2LearnsACountingPattern) { expect_learns(kGpt2Model); }

TEST(Trainer, LlamaLearnsACountingPattern) { expect_learns(kLlamaModel); }

const char* kBertModel = R"(
model:
  type: bert
  num_hidden_layers: 2
  num_attention_heads: 2
  hidden_size: 32
  intermediate_size: 64
  vocab_size: 17
  max_position_embeddings: 32
)";

// BERT learns to fill in masked tokens of repeating documents (the mask id 16 lies outside the
// data's 0..15). It learns more slowly than the causal models above: the bar is lower.
TEST(Trainer, BertLearnsMaskedTokens) {
  test::TempDir tmp("trainer_bert");
  const fs::path data = make_dataset(tmp / "data", Pattern::repeating);
  const RunConfig config = make_config(kBertModel, data, tmp / "run",
                                       {{"train.mask_token_id", "16"}, {"train.mlm_probability", "0.3"},
                                        {"train.batch_size", "8"}, {"train.max_steps", "40"}});
  const TrainResult result = pretrain(config, quiet());
  ASSERT_EQ(result.losses.size(), 40u);
  EXPECT_NEAR(result.losses.front(), std::log(17.0), 0.6);
  ASSERT_EQ(result.val_losses.size(), 4u);
  EXPECT_LT(result.val_losses.back(), 0.8 * std::log(17.0));
  EXPECT_LT(result.val_losses.back(), result.val_losses.front());
  const TrainerState state = read_trainer_state(result.last_checkpoint);
  EXPECT_EQ(state.mask_stream, 40u);  // one masking stream per micro-batch
  EXPECT_TRUE(fs::exists(tmp / "run" / "model" / "model.safetensors"));
}

// 6 steps at once, or 3 steps, a stop, and a resume for 3 more: the same losses, bit for bit.
void expect_exact_resume(const char* model_yaml, std::vector<Override> extra) {
  test::TempDir tmp("trainer_resume");
  const fs::path data = make_dataset(tmp / "data");
  std::vector<Override> overrides = {{"train.max_steps", "6"}, {"train.grad_accum", "2"},
                                     {"checkpoint.every", "0"}, {"eval.every", "0"}};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  const TrainResult whole = pretrain(make_config(model_yaml, data, tmp / "whole", overrides), quiet());
  ASSERT_EQ(whole.losses.size(), 6u);

  const RunConfig config = make_config(model_yaml, data, tmp / "split", overrides);
  TrainOptions first = quiet();
  first.on_step = [](const StepReport& r) {
    if (r.step == 3) request_stop();
  };
  const TrainResult part1 = pretrain(config, first);
  EXPECT_TRUE(part1.interrupted);
  ASSERT_EQ(part1.step, 3);
  EXPECT_FALSE(stop_requested());
  EXPECT_EQ(part1.last_checkpoint.filename(), "step-000003");
  EXPECT_FALSE(fs::exists(tmp / "split" / "model"));  // no final model for an interrupted run

  TrainOptions second = quiet();
  second.resume = tmp / "split";
  const TrainResult part2 = pretrain(config, second);
  ASSERT_EQ(part2.step, 6);
  ASSERT_EQ(part2.losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(part1.losses[i], whole.losses[i]) << "step " << i + 1;
    EXPECT_EQ(part2.losses[i], whole.losses[i + 3]) << "step " << i + 4;
  }
}

TEST(Trainer, ResumeContinuesExactly) { expect_exact_resume(kGpt2Model, {}); }

TEST(Trainer, ResumeContinuesExactlyForAMaskedLm) {
  expect_exact_resume(kBertModel, {{"train.mask_token_id", "16"}, {"train.checkpointing", "every_k"}});
}

TEST(Trainer, ResumeContinuesExactlyWithSgdAndCheckpointing) {
  expect_exact_resume(kLlamaModel, {{"train.optimizer", "sgd"}, {"train.checkpointing", "all"}});
}

// Two micro-batches of 2 see the windows one batch of 4 sees (the loader's order is by window), so
// the step's loss and update are the same up to rounding.
TEST(Trainer, GradientAccumulationMatchesOneLargeBatch) {
  test::TempDir tmp("trainer_accum");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> base = {{"train.max_steps", "3"}, {"train.warmup_steps", "1"}, {"eval.every", "0"},
                                      {"checkpoint.every", "0"}};
  std::vector<Override> large = base, accumulated = base;
  large.push_back({"train.batch_size", "4"});
  accumulated.push_back({"train.batch_size", "2"});
  accumulated.push_back({"train.grad_accum", "2"});
  const TrainResult a = pretrain(make_config(kGpt2Model, data, tmp / "a", large), quiet());
  const TrainResult b = pretrain(make_config(kGpt2Model, data, tmp / "b", accumulated), quiet());
  ASSERT_EQ(a.losses.size(), 3u);
  ASSERT_EQ(b.losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(a.losses[i], b.losses[i], 2e-5) << "step " << i + 1;
  EXPECT_NE(a.losses[1], a.losses[0]);  // the updates changed something
}

const char* kMixtralModel = R"(
model:
  type: mixtral
  num_hidden_layers: 2
  num_attention_heads: 2
  num_key_value_heads: 1
  hidden_size: 16
  intermediate_size: 32
  vocab_size: 16
  max_position_embeddings: 32
  num_local_experts: 4
  num_experts_per_tok: 2
  router_aux_loss_coef: 0.05
)";

// The MoE routers' auxiliary loss is part of the loss minimised and is logged beside it.
TEST(Trainer, MixtralTrainsWithTheAuxiliaryLoss) {
  test::TempDir tmp("trainer_moe");
  const fs::path data = make_dataset(tmp / "data");
  std::vector<StepReport> steps;
  TrainOptions o = quiet();
  o.on_step = [&](const StepReport& r) { steps.push_back(r); };
  pretrain(make_config(kMixtralModel, data, tmp / "run", {{"train.max_steps", "4"}, {"eval.every", "0"}}), o);
  ASSERT_EQ(steps.size(), 4u);
  for (const StepReport& r : steps) {
    EXPECT_GT(r.aux_loss, 0.0);
    EXPECT_NEAR(r.loss, r.lm_loss + r.aux_loss, 1e-6);
  }
  const auto lines = read_jsonl(tmp / "run" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["aux_loss"].get<double>(), steps[0].aux_loss);
  EXPECT_EQ(lines[0]["lm_loss"].get<double>(), steps[0].lm_loss);
}

TEST(Trainer, DivergedLossStopsAndKeepsTheLastGoodCheckpoint) {
  test::TempDir tmp("trainer_nan");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> base = {{"train.max_steps", "6"}, {"checkpoint.every", "100"}, {"eval.every", "0"},
                                      {"train.schedule", "constant"}, {"train.warmup_steps", "0"}};
  TrainOptions first = quiet();
  first.on_step = [](const StepReport& r) {
    if (r.step == 2) request_stop();
  };
  ASSERT_EQ(pretrain(make_config(kGpt2Model, data, tmp / "run", base), first).step, 2);

  // Resumed with an absurd learning rate: step 3 (good weights) updates them to ~1e38, step 4 overflows.
  std::vector<Override> wild = base;
  wild.push_back({"train.lr", "1e38"});
  wild.push_back({"train.grad_clip", "0"});
  TrainOptions second = quiet();
  second.resume = tmp / "run";
  int64_t last_step = 0;
  second.on_step = [&](const StepReport& r) { last_step = r.step; };
  const std::string msg = test::error_message([&] { pretrain(make_config(kGpt2Model, data, tmp / "run", wild), second); });
  test::expect_mentions(msg, {"step 4", "training stopped", "step-000002"});
  EXPECT_EQ(last_step, 3);
  const auto kept = list_checkpoints(tmp / "run");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].first, 2);
}

TEST(Trainer, KeepLastPrunesOldCheckpoints) {
  test::TempDir tmp("trainer_keep");
  const fs::path data = make_dataset(tmp / "data");
  const RunConfig config = make_config(kGpt2Model, data, tmp / "run",
                                       {{"train.max_steps", "5"}, {"checkpoint.every", "1"},
                                        {"checkpoint.keep_last", "3"}, {"eval.every", "0"}});
  pretrain(config, quiet());
  const auto kept = list_checkpoints(tmp / "run");
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].first, 3);
  EXPECT_EQ(kept[2].first, 5);
  EXPECT_FALSE(fs::exists(tmp / "run" / "checkpoints" / "step-000002"));
}

TEST(Trainer, RefusesWhatItCannotDo) {
  test::TempDir tmp("trainer_refuse");
  const fs::path data = make_dataset(tmp / "data");
  test::expect_mentions(test::error_message([&] {
                          pretrain(make_config(kGpt2Model, data, tmp / "a", {{"train.precision", "fp8"}}), quiet());
                        }),
                        {"train.precision", "fp8"});
  // Fine-tuning keys mean nothing here: refused, not ignored.
  test::expect_mentions(test::error_message([&] {
                          pretrain(make_config(kGpt2Model, data, tmp / "e",
                                               {{"continual.replay_fraction", "0.5"}, {"data.labels", "[a, b]"}}),
                                   quiet());
                        }),
                        {"continual.replay_fraction", "data.labels", "liandan finetune"});
  // A fresh run into a folder that holds one.
  const std::vector<Override> one_step = {{"train.max_steps", "1"}, {"train.warmup_steps", "0"}, {"eval.every", "0"}};
  pretrain(make_config(kGpt2Model, data, tmp / "b", one_step), quiet());
  test::expect_mentions(test::error_message([&] { pretrain(make_config(kGpt2Model, data, tmp / "b", one_step), quiet()); }),
                        {"already holds a run", "--resume"});
  test::expect_mentions(test::error_message([&] {
                          TrainOptions o = quiet();
                          o.resume = tmp / "nothing";
                          pretrain(make_config(kGpt2Model, data, tmp / "c", {}), o);
                        }),
                        {"--resume", "nothing"});
  test::expect_mentions(test::error_message([&] {
                          pretrain(make_config(kGpt2Model, data, tmp / "d", {{"model.vocab_size", "8"}}), quiet());
                        }),
                        {"vocab_size 16", "larger than the model's"});
  // BERT with neither train.mask_token_id nor a tokenizer that has [MASK] (the dataset names none).
  test::expect_mentions(test::error_message([&] { pretrain(make_config(kBertModel, data, tmp / "f", {}), quiet()); }),
                        {"no mask token id", "train.mask_token_id"});
  // A run that cannot start (here: fewer windows than one batch) leaves no run behind.
  EXPECT_FALSE(test::error_message([&] {
                 pretrain(make_config(kGpt2Model, data, tmp / "e", {{"train.batch_size", "1000"}}), quiet());
               }).empty());
  EXPECT_FALSE(fs::exists(tmp / "e"));
}

}  // namespace
}  // namespace ld::train
