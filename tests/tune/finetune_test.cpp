// `liandan finetune` on a tiny GPT-2 base folder made here (random weights, a byte-level BPE with
// ChatML's special tokens) and synthetic arithmetic instructions: LoRA SFT lowers the response loss
// and changes nothing but the LoRA tensors; a resume continues bit for bit; the saved adapter
// reloads (in memory and through `liandan generate --adapter`) with the in-memory model's logits and
// replies; `liandan export --merge` gives a plain folder with the same logits; full fine-tuning
// starts from the base's weights; the other methods train and reload; bad configurations fail
// before training with one clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"
#include "io/hf_config.hpp"
#include "infer/generate.hpp"
#include "io/safetensors.hpp"
#include "models/causal_lm.hpp"
#include "peft/peft_io.hpp"
#include "peft/projections.hpp"
#include "test_util.hpp"
#include "tokenizer/bpe_trainer.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/checkpoint.hpp"
#include "train/optimizer.hpp"
#include "train/run_config.hpp"
#include "train/stop_request.hpp"
#include "train/train_task.hpp"
#include "tune/finetune.hpp"
#include "tune/finetune_task_fixture.hpp"
#include "tune/finetune_sft.hpp"
#include "tune/sft_loader.hpp"
#include "tune/synthetic_tasks.hpp"

namespace ld::tune {
namespace {

namespace fs = std::filesystem;
using ld::test::TempDir;
using test::run_cli;

// The base folder, its data and a scratch area, made once per process.
struct Fixture {
  TempDir dir{"finetune_test"};
  fs::path base, train_file, val_file;
  int32_t im_end = -1;

  Fixture() {
    std::string corpus;
    for (const InstructionPair& p : arithmetic_task(300, 1))
      corpus += "<|im_start|>user\n" + p.instruction + "<|im_end|>\n<|im_start|>assistant\n" + p.output + "\n";
    im_end = test::make_tiny_base(dir.path(), corpus, 300);
    base = dir / "base";
    train_file = dir / "train.jsonl";
    val_file = dir / "val.jsonl";
    write_alpaca_jsonl(train_file, arithmetic_task(64, 2));
    write_alpaca_jsonl(val_file, arithmetic_task(8, 3));
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

std::string yaml(const std::string& method, const fs::path& out, int64_t max_steps) {
  const Fixture& f = fixture();
  return "model: {from: " + f.base.string() + "}\nfinetune: {method: " + method +
         ", task: sft}\ndata: {train: " + f.train_file.string() + ", val: " + f.val_file.string() +
         "}\ntrain: {batch_size: 8, seq_len: 40, max_steps: " + std::to_string(max_steps) +
         ", lr: 0.01, warmup_steps: 0, schedule: constant, weight_decay: 0}\n"
         "eval: {every: 0, batches: 1, sample_tokens: 8}\ncheckpoint: {every: 0}\nlog: {every: 1000}\noutput_dir: " +
         out.string() + "\n";
}

train::RunConfig config(const std::string& method, const fs::path& out, int64_t max_steps,
                        const std::vector<train::Override>& overrides = {}) {
  return train::parse_run_config(yaml(method, out, max_steps), "test.yaml", overrides);
}

models::CausalLM& lm_of(train::TrainTask& task) { return dynamic_cast<models::CausalLM&>(task.model()); }

Tensor logits(const models::CausalLM& lm) {
  autograd::NoGradGuard no_grad;
  return lm.forward(from_vector<int64_t>({5, 17, 40, 3, 99, 120, 7, 64}, {2, 4}));
}

double mean(const std::vector<double>& v, size_t first, size_t count) {
  double s = 0;
  for (size_t i = first; i < first + count; ++i) s += v[i];
  return s / double(count);
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One LoRA SFT run (all-linear, an evaluation at its end), trained once, its task kept in memory.
struct LoraRun {
  TempDir dir{"finetune_lora"};
  train::RunConfig config;
  std::unique_ptr<train::TrainTask> task;
  train::TrainResult result;
  double exact_match = -1;

  LoraRun() {
    config = tune::config("lora", dir / "run", 40, {{"lora.target_modules", "[all-linear]"}, {"eval.every", "40"}});
    task = make_finetune_task(config, {}, /*print=*/false);
    train::TrainOptions options;
    options.print = false;
    options.on_eval = [this](const train::EvalReport& r) { exact_match = r.exact_match; };
    result = train::run_training(*task, config, options, {});
    lm_of(*task).eval();
  }
};

LoraRun& lora_run() {
  static LoraRun run;
  return run;
}

TEST(Finetune, LoraSftLowersTheResponseLoss) {
  const LoraRun& run = lora_run();
  ASSERT_EQ(run.result.losses.size(), 40u);
  const double first = mean(run.result.losses, 0, 3), last = mean(run.result.losses, 37, 3);
  EXPECT_LT(last, first - 2.0) << "first steps " << first << ", last steps " << last;
  EXPECT_GE(run.exact_match, 0.0);  // measured (8 held-out prompts); not expected to be high this early
  EXPECT_LE(run.exact_match, 1.0);
  const std::string metrics = read_bytes(run.dir / "run/metrics.jsonl");
  EXPECT_NE(metrics.find("\"exact_match\""), std::string::npos);
  EXPECT_TRUE(fs::exists(run.dir / "run/adapter/adapter_model.safetensors"));
  EXPECT_FALSE(fs::exists(run.dir / "run/model"));  // the base is not copied
  // resolved.yaml lists every key (model keys, pretraining keys at their defaults) and loads back.
  const train::RunConfig resolved = train::load_run_config(run.dir / "run/resolved.yaml");
  EXPECT_NO_THROW(check_finetune_config(resolved));
  EXPECT_EQ(train::to_yaml(resolved), train::to_yaml(run.config));
}

TEST(Finetune, LoraChangesOnlyTheLoraTensors) {
  LoraRun& run = lora_run();
  const auto base = models::load_causal_lm(fixture().base);
  const auto before = base->named_parameters();
  const auto after = peft::base_parameters(lm_of(*run.task));
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ(before[i].first, after[i].first);
    EXPECT_EQ(ld::test::max_abs_diff(before[i].second, after[i].second), 0.0) << before[i].first;
  }
  // r (in + out) per projection: c_attn 32->96, attn.c_proj 32->32, c_fc 32->128, mlp.c_proj 128->32.
  int64_t trainable = 0;
  for (const auto& [name, t] : run.task->trainable_parameters()) trainable += t.requires_grad() ? t.numel() : 0;
  EXPECT_EQ(trainable, 2 * 8 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32)));
  // The adapter did train: its B matrices left zero.
  int64_t nonzero = 0;
  for (const auto& [name, t] : run.task->trainable_parameters())
    if (name.find("lora_B") != std::string::npos)
      for (float v : t.to_vector<float>()) nonzero += v != 0.0f;
  EXPECT_GT(nonzero, 0);
}

TEST(Finetune, SavedLoraAdapterReloadsWithTheSameLogitsAndReplies) {
  LoraRun& run = lora_run();
  const fs::path adapter = run.dir / "run/adapter";
  const auto reloaded = models::load_causal_lm(fixture().base);
  peft::load_adapter(*reloaded, adapter);
  reloaded->eval();
  EXPECT_EQ(ld::test::max_abs_diff(logits(*reloaded), logits(lm_of(*run.task))), 0.0);

  // `liandan generate --adapter` gives the in-memory model's greedy ids.
  const auto tokenizer = tok::load_tokenizer(fixture().base);
  const std::string prompt = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n";
  const std::vector<int32_t> ids = tokenizer->encode(prompt);
  std::string prompt_ids;
  for (int32_t id : ids) prompt_ids += (prompt_ids.empty() ? "" : " ") + std::to_string(id);
  infer::GenerateOptions g;
  g.max_new_tokens = 6;
  g.sampling.temperature = 0.0f;
  g.eos_ids = {fixture().im_end};
  const std::vector<int32_t> expected =
      infer::generate(lm_of(*run.task), std::vector<int64_t>(ids.begin(), ids.end()), g);
  std::string expected_line;
  for (int32_t id : expected) expected_line += (expected_line.empty() ? "" : " ") + std::to_string(id);
  const std::string out =
      run_cli("generate --model " + fixture().base.string() + " --adapter " + adapter.string() + " --prompt-ids \"" +
              prompt_ids + "\" --max-new-tokens 6 --temperature 0 --output ids");
  EXPECT_EQ(out, expected_line + "\n");

  // `liandan eval --adapter` scores with the adapter attached.
  std::ofstream(run.dir / "text.txt") << "What is 12 + 30? 42\nWhat is 7 - 3? 4\n";
  const std::string ppl =
      "eval --model " + fixture().base.string() + " --task ppl --data " + (run.dir / "text.txt").string();
  EXPECT_NE(run_cli(ppl), run_cli(ppl + " --adapter " + adapter.string()));
}

TEST(Finetune, ExportMergeGivesAFolderWithTheAdaptedLogits) {
  LoraRun& run = lora_run();
  const fs::path merged = run.dir / "merged";
  run_cli("export --model " + fixture().base.string() + " --adapter " + (run.dir / "run/adapter").string() +
          " --merge --out " + merged.string());
  const auto plain = models::load_causal_lm(merged);
  EXPECT_LE(ld::test::max_abs_diff(logits(*plain), logits(lm_of(*run.task))), 1e-5);
  EXPECT_TRUE(fs::exists(merged / "tokenizer.json"));
}

TEST(Finetune, LoraResumeIsExact) {
  TempDir dir("finetune_resume");
  // lora.dropout draws from the default generator: the resume must restore it too.
  const std::vector<train::Override> o = {{"lora.dropout", "0.1"}, {"checkpoint.every", "3"}};
  train::TrainOptions quiet;
  quiet.print = false;
  const train::TrainResult straight = finetune(config("lora", dir / "a", 6, o), quiet);
  train::TrainOptions first = quiet;
  first.on_step = [](const train::StepReport& r) {
    if (r.step == 3) train::request_stop();
  };
  const train::TrainResult part1 = finetune(config("lora", dir / "b", 6, o), first);
  ASSERT_TRUE(part1.interrupted);
  train::TrainOptions again = quiet;
  again.resume = dir / "b";
  const train::TrainResult part2 = finetune(config("lora", dir / "b", 6, o), again);
  std::vector<double> joined = part1.losses;
  joined.insert(joined.end(), part2.losses.begin(), part2.losses.end());
  ASSERT_EQ(joined.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(joined[i], straight.losses[i]) << "step " << i + 1;
  EXPECT_TRUE(read_bytes(dir / "a/adapter/adapter_model.safetensors") ==
              read_bytes(dir / "b/adapter/adapter_model.safetensors"))
      << "the adapters differ";
  // The checkpoint holds the adapter and the optimizer state of the LoRA tensors only.
  const fs::path ckpt = dir / "b/checkpoints" / train::checkpoint_name(3);
  EXPECT_TRUE(fs::exists(ckpt / "adapter_config.json"));
  EXPECT_FALSE(fs::exists(ckpt / "model.safetensors"));
  const io::SafetensorsFile optimizer = io::SafetensorsFile::open(ckpt / train::kOptimizerFile);
  EXPECT_FALSE(optimizer.tensors().empty());
  for (const io::TensorInfo& t : optimizer.tensors()) EXPECT_NE(t.name.find("lora_"), std::string::npos) << t.name;
}

TEST(Finetune, FullFineTuningStartsFromTheBaseWeights) {
  TempDir dir("finetune_full");
  const train::RunConfig c = config("full", dir / "run", 1);
  train::TrainOptions quiet;
  quiet.print = false;
  const train::TrainResult result = finetune(c, quiet);
  // The first batch, drawn as the run drew it, scored by the base.
  const auto base = models::load_causal_lm(fixture().base);
  const auto tokenizer = tok::load_tokenizer(fixture().base);
  SftDataset data = build_sft_dataset(read_sft_jsonl(fixture().train_file), ChatTemplate::chatml(), *tokenizer, 40);
  SftLoader loader(data.examples, {.batch_size = 8, .seq_len = 40, .packing = false, .shuffle = true,
                                   .seed = uint64_t(c.train.seed), .pad_id = 0});
  autograd::NoGradGuard no_grad;
  const double expected = sft_loss(*base, loader.next()).loss.item();
  ASSERT_EQ(result.losses.size(), 1u);
  EXPECT_NEAR(result.losses[0], expected, 1e-6 * std::abs(expected));
  EXPECT_TRUE(fs::exists(dir / "run/model/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "run/model/tokenizer.json"));
}

// Adapter and prompt tuning: a few steps change the model, and the saved folder reloads onto the
// base with the trained model's logits.
void expect_method_trains_and_reloads(const std::string& method, const std::vector<train::Override>& o) {
  TempDir dir("finetune_" + method);
  const train::RunConfig c = config(method, dir / "run", 3, o);
  auto task = make_finetune_task(c, {}, false);
  train::TrainOptions quiet;
  quiet.print = false;
  train::run_training(*task, c, quiet, {});
  models::CausalLM& trained = lm_of(*task);
  trained.eval();
  const auto base = models::load_causal_lm(fixture().base);
  EXPECT_GT(ld::test::max_abs_diff(logits(*base), logits(trained)), 1e-4) << method << " changed nothing";
  peft::load_adapter(*base, dir / "run/adapter");
  base->eval();
  EXPECT_EQ(ld::test::max_abs_diff(logits(*base), logits(trained)), 0.0) << method;
}

TEST(Finetune, AdapterMethodTrainsAndReloads) { expect_method_trains_and_reloads("adapter", {{"adapter.width", "8"}}); }

TEST(Finetune, PromptTuningTrainsAndReloads) {
  expect_method_trains_and_reloads("prompt", {{"prompt_tuning.num_virtual_tokens", "4"},
                                              {"prompt_tuning.init", "text"},
                                              {"prompt_tuning.init_text", "What is"}});
}

// Domain fine-tuning: LoRA on next-token training over a prepared dataset (tokenized with the base's
// tokenizer), with pretraining's batches and validation loss.
TEST(Finetune, ClmTaskTrainsLoraOnAPreparedDataset) {
  TempDir dir("finetune_clm");
  const auto tokenizer = tok::load_tokenizer(fixture().base);
  data::DatasetIndex index;
  index.tokenizer = fixture().base.string();
  index.vocab_size = tokenizer->vocab_size();
  index.eos_id = fixture().im_end;
  index.token_width = 2;
  for (const auto& [split, seed] : {std::pair<std::string, uint64_t>{"train", 4}, {"val", 5}}) {
    const std::string file = split + "-00000.bin";
    data::ShardWriter writer(dir / file, 2);
    for (const InstructionPair& p : arithmetic_task(40, seed))
      writer.append_document(tokenizer->encode(p.instruction + " " + p.output), index.eos_id);
    writer.finish();
    index.splits[split] = {{file, writer.tokens(), writer.documents()}};
  }
  data::write_dataset_index(dir.path(), index);
  const std::string text =
      "model: {from: " + fixture().base.string() + "}\nfinetune: {method: lora, task: clm}\ndata: {path: " +
      dir.path().string() + "}\ntrain: {batch_size: 4, seq_len: 32, max_steps: 12, lr: 0.01, warmup_steps: 0}\n" +
      "eval: {every: 12, batches: 2}\ncheckpoint: {every: 0}\noutput_dir: " + (dir / "run").string() + "\n";
  train::TrainOptions quiet;
  quiet.print = false;
  const train::TrainResult result = finetune(train::parse_run_config(text, "clm.yaml"), quiet);
  ASSERT_EQ(result.losses.size(), 12u);
  EXPECT_LT(mean(result.losses, 9, 3), mean(result.losses, 0, 3));
  ASSERT_EQ(result.val_losses.size(), 1u);
  EXPECT_TRUE(std::isfinite(result.val_losses[0]));
  EXPECT_TRUE(fs::exists(dir / "run/adapter/adapter_config.json"));
  // Instruction-data keys mean nothing here.
  const std::string message = ld::test::error_message([&] {
    finetune(train::parse_run_config(text, "clm.yaml", {{"data.packing", "true"}}), quiet);
  });
  EXPECT_NE(message.find("data.packing"), std::string::npos) << message;
}

void expect_config_error(const std::vector<train::Override>& o, const std::vector<std::string>& words,
                         const std::string& method = "lora") {
  TempDir dir("finetune_bad");
  train::TrainOptions quiet;
  quiet.print = false;
  const std::string message = ld::test::error_message([&] { finetune(config(method, dir / "run", 2, o), quiet); });
  for (const std::string& w : words) EXPECT_NE(message.find(w), std::string::npos) << message << "\nlacks " << w;
  EXPECT_FALSE(fs::exists(dir / "run")) << "a run that cannot start leaves no trace";
}

TEST(Finetune, BadConfigurationsFailBeforeTraining) {
  expect_config_error({{"model.from", "/no/such/base"}}, {"/no/such/base", "config.json"});
  expect_config_error({{"finetune.method", "qlora"}}, {"finetune.method", "full|lora|adapter|prompt"});
  expect_config_error({{"finetune.task", "classify"}}, {"finetune.task=classify", "method=adapter"}, "adapter");
  expect_config_error({{"finetune.task", "multitask"}}, {"data.train", "multitask.train"});
  expect_config_error({{"train.mlm_probability", "0.2"}}, {"train.mlm_probability", "pretraining"});
  expect_config_error({{"data.path", "x"}}, {"data.path", "sft"});
  expect_config_error({{"lora.r", "4"}}, {"lora.r", "method lora", "finetune.method=adapter"}, "adapter");
  expect_config_error({{"adapter.width", "4"}}, {"adapter.width", "method adapter"});
  expect_config_error({{"model.n_layer", "3"}}, {"model.n_layer", "remove"});
  expect_config_error({{"lora.target_modules", "[no_such_proj]"}}, {"no_such_proj"});
  expect_config_error({{"data.train", "/no/such.jsonl"}}, {"/no/such.jsonl"});
}

}  // namespace
}  // namespace ld::tune
