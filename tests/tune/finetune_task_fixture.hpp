#pragma once
// A tiny GPT-2 base folder (random weights, widened as a trained model's are; a byte-level BPE
// with ChatML's special tokens trained on the synthetic tasks' words) and the helpers the
// classify, multitask and continual fine-tuning tests share. Made once per process.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "test_util.hpp"
#include "tokenizer/bpe_trainer.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/run_config.hpp"
#include "train/train_task.hpp"
#include "tune/finetune.hpp"
#include "tune/synthetic_tasks.hpp"
#include "tune_test_util.hpp"

namespace ld::tune::test {

// A tiny GPT-2 base folder (dir/base) with a byte-level BPE trained on `corpus` (ChatML's special
// tokens; dir/tok): random weights widened as a trained model's are (with a frozen output head of
// 0.02-sized embeddings no adapter could make the logits confident). Returns <|im_end|>'s id, the
// model's EOS.
inline int32_t make_tiny_base(const std::filesystem::path& dir, const std::string& corpus, int64_t vocab_size) {
  namespace fs = std::filesystem;
  std::ofstream(dir / "corpus.txt") << corpus;
  tok::BpeTrainOptions options;
  options.vocab_size = vocab_size;
  options.special_tokens = {"<|im_start|>", "<|im_end|>"};
  options.threads = 1;
  fs::create_directories(dir / "tok");
  tok::save_tokenizer_json(tok::train_byte_level_bpe({dir / "corpus.txt"}, options), dir / "tok");
  const auto tokenizer = tok::load_tokenizer(dir / "tok");
  const int32_t im_end = *tokenizer->token_to_id("<|im_end|>");
  models::StackConfig c;
  c.kind = models::StackKind::gpt2;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.n_embd = 32;
  c.vocab_size = tokenizer->vocab_size();
  c.n_positions = 64;
  io::HfModelConfig hf = io::make_hf_config(c, /*tie_word_embeddings=*/true);
  hf.eos_token_id = hf.bos_token_id = im_end;
  hf.eos_token_ids = {im_end};
  Generator gen(11);
  const auto lm = models::make_causal_lm(hf, gen);
  autograd::NoGradGuard no_grad;
  Generator jitter(12);
  for (auto& [name, t] : lm->named_parameters())
    if (t.dim() == 2) t.copy_(normal(t.shape(), 0.0f, 0.3f, &jitter));
  models::save_pretrained(*lm, hf, dir / "base", false, dir / "tok");
  return im_end;
}

struct TaskFixture {
  ld::test::TempDir dir{"finetune_tasks"};
  std::filesystem::path base;

  TaskFixture() {
    std::string corpus;
    for (const LabeledText& t : separable_classification_task(200, 1)) corpus += t.text + "\n";
    for (const InstructionPair& p : arithmetic_task(200, 1)) corpus += p.instruction + " " + p.output + "\n";
    for (const InstructionPair& p : reversal_task(200, 1)) corpus += p.instruction + " " + p.output + "\n";
    corpus += "red green blue black white pink gold gray one two three four five six seven eight\n";
    make_tiny_base(dir.path(), corpus, 320);
    base = dir / "base";
  }
};

inline const TaskFixture& task_fixture() {
  static const TaskFixture f;
  return f;
}

// The common training keys: constant lr, no warmup, no decay, quiet, no checkpoints.
inline std::string train_yaml(const std::filesystem::path& out, int64_t max_steps, double lr) {
  return "train: {batch_size: 16, seq_len: 32, max_steps: " + std::to_string(max_steps) +
         ", lr: " + std::to_string(lr) + ", warmup_steps: 0, schedule: constant, weight_decay: 0}\n"
         "checkpoint: {every: 0}\nlog: {every: 1000}\noutput_dir: " + out.string() + "\n";
}

// Runs a shell command (its output captured, standard error too) and expects it to succeed.
inline std::string run_command(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[512];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(p ? pclose(p) : -1, 0) << cmd << "\n" << out;
  return out;
}

#ifdef LIANDAN_BINARY
// liandan (the built binary) with these arguments.
inline std::string run_cli(const std::string& args) { return run_command(std::string(LIANDAN_BINARY) + " " + args); }
#endif

// The eval lines of a run's metrics.jsonl.
inline std::vector<nlohmann::json> eval_lines(const std::filesystem::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("type", "") == "eval") out.push_back(j);
  }
  return out;
}

inline train::TrainResult run_quietly(const train::RunConfig& config, const std::filesystem::path& resume = {}) {
  train::TrainOptions options;
  options.print = false;
  options.resume = resume;
  return finetune(config, options);
}

}  // namespace ld::tune::test
