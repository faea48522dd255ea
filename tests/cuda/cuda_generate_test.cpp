// Inference on a CUDA device against the same on the CPU: greedy generation of a batch of two
// uneven prompts (left padding, attention mask, KV cache on the device) gives the CPU's tokens, for
// a tiny random GPT-2 and LLaMA, with f32 and with bf16 weights; loglikelihood scoring (what every
// `liandan eval` task but generate runs) gives the CPU's numbers; and the CLI's `generate` and
// `eval --task ppl` print the same with --device cuda as with --device cpu. Every test skips without
// a device (cuda_test_util.hpp); tests/cuda/CMakeLists.txt checks the no-device error everywhere.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.hpp"
#include "eval/lm_eval.hpp"
#include "infer/bf16_weights.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "test_util.hpp"

#ifndef LIANDAN_BINARY
#error "cuda_generate_test needs LIANDAN_BINARY (the liandan executable)"
#endif

namespace ld::test {
namespace {

namespace fs = std::filesystem;

class CudaGenerate : public CudaTest {};

// A tiny random model of `kind`: big enough a vocabulary that greedy choices are rarely near-ties.
io::HfModelConfig tiny_config(models::StackKind kind, int64_t vocab = 64) {
  models::StackConfig s;
  s.kind = kind;
  s.n_layer = 2;
  s.n_head = 4;
  s.n_kv_head = kind == models::StackKind::llama ? 2 : 4;
  s.n_embd = 32;
  s.vocab_size = vocab;
  s.n_positions = 64;
  s.intermediate_size = kind == models::StackKind::llama ? 64 : 4 * s.n_embd;
  return io::make_hf_config(s, /*tie_word_embeddings=*/kind == models::StackKind::gpt2);
}

std::unique_ptr<models::CausalLM> tiny_lm(models::StackKind kind, uint64_t seed) {
  Generator init(seed);
  std::unique_ptr<models::CausalLM> lm = models::make_causal_lm(tiny_config(kind), init);
  lm->eval();
  return lm;
}

// Two prompts of different lengths, so the shorter is left-padded and masked.
const std::vector<std::vector<int64_t>> kPrompts = {{3, 4, 5, 6, 7, 8}, {9, 2}};

infer::GenerateOptions greedy(int64_t new_tokens) {
  infer::GenerateOptions g;
  g.max_new_tokens = new_tokens;
  g.sampling.temperature = 0.0f;
  return g;
}

void expect_batch_agrees(models::CausalLM& lm, const std::string& what) {
  const auto on_cpu = infer::generate_batch(lm, kPrompts, greedy(16));
  lm.to(kGPU);
  const auto on_gpu = infer::generate_batch(lm, kPrompts, greedy(16));
  ASSERT_EQ(on_cpu.size(), 2u);
  EXPECT_EQ(on_cpu[0].size(), 16u);
  EXPECT_EQ(on_gpu, on_cpu) << what;
}

TEST_F(CudaGenerate, Gpt2GreedyBatchMatchesTheCpu) {
  auto lm = tiny_lm(models::StackKind::gpt2, 11);
  expect_batch_agrees(*lm, "GPT-2, f32");
}

TEST_F(CudaGenerate, LlamaGreedyBatchMatchesTheCpu) {
  auto lm = tiny_lm(models::StackKind::llama, 12);
  expect_batch_agrees(*lm, "LLaMA, f32");
}

// bf16 weights (liandan_bench_generate --dtype bfloat16): the device widens them as the CPU does.
TEST_F(CudaGenerate, Bf16WeightsGreedyBatchMatchesTheCpu) {
  for (models::StackKind kind : {models::StackKind::gpt2, models::StackKind::llama}) {
    auto lm = tiny_lm(kind, 13);
    EXPECT_GT(infer::to_bf16_weights(*lm), 0);
    expect_batch_agrees(*lm, kind == models::StackKind::gpt2 ? "GPT-2, bf16 weights" : "LLaMA, bf16 weights");
  }
}

TEST_F(CudaGenerate, LoglikelihoodMatchesTheCpu) {
  auto lm = tiny_lm(models::StackKind::llama, 14);
  const std::vector<eval::LoglikRequest> requests = {{{1, 2, 3}, {4, 5}}, {{7}, {8, 9, 10, 11}}, {{12, 13}, {14}}};
  const eval::LmEvalOptions options{.batch_size = 2, .max_length = 0};
  const std::vector<eval::LoglikResult> cpu = eval::loglikelihood(*lm, requests, options);
  lm->to(kGPU);
  const std::vector<eval::LoglikResult> gpu = eval::loglikelihood(*lm, requests, options);
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    EXPECT_NEAR(gpu[i].logprob, cpu[i].logprob, 1e-4 * std::abs(cpu[i].logprob)) << "request " << i;
    EXPECT_EQ(gpu[i].greedy, cpu[i].greedy) << "request " << i;
    EXPECT_EQ(gpu[i].tokens, cpu[i].tokens) << "request " << i;
  }
}

// --- the liandan binary

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CliRun run_liandan(const std::string& args, const fs::path& scratch) {
  const fs::path out = scratch / "cli.stdout", err = scratch / "cli.stderr";
  const std::string cmd = std::string("'") + LIANDAN_BINARY + "' " + args + " >'" + out.string() + "' 2>'" +
                          err.string() + "'";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out), read_text(err)};
}

// The value of row `name` in eval's table ("name   value"); a failure if there is none.
std::string table_value(const std::string& table, const std::string& name) {
  std::istringstream lines(table);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (words >> key >> value && key == name) return value;
  }
  ADD_FAILURE() << "no row '" << name << "' in:\n" << table;
  return "0";
}

TEST_F(CudaGenerate, CliGenerateIdsOnCudaEqualTheCpus) {
  TempDir tmp("cuda_cli_generate");
  const fs::path model = tmp / "model";
  models::save_pretrained(*tiny_lm(models::StackKind::gpt2, 15), tiny_config(models::StackKind::gpt2), model);
  const std::string args =
      "generate --model '" + model.string() + "' --prompt-ids '1 2 3' --max-new-tokens 20 --temperature 0 --output ids";
  const CliRun cpu = run_liandan(args + " --device cpu", tmp.path());
  const CliRun gpu = run_liandan(args + " --device cuda", tmp.path());
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
  EXPECT_EQ(gpu.out, cpu.out);
  EXPECT_NE(cpu.out, "");
}

// eval --task ppl needs a tokenizer: the real GPT-2 one from ../shared, with a model of its vocabulary.
TEST_F(CudaGenerate, CliEvalPerplexityOnCudaEqualsTheCpus) {
  const fs::path tokenizer = fs::path(LIANDAN_SHARED_DIR) / "tokenizers" / "gpt2";
  if (!fs::exists(tokenizer / "encoder.json")) GTEST_SKIP() << "no GPT-2 tokenizer at " << tokenizer;
  TempDir tmp("cuda_cli_eval");
  const fs::path model = tmp / "model", data = tmp / "docs.txt";
  const io::HfModelConfig config = tiny_config(models::StackKind::gpt2, 50257);
  Generator init(16);
  models::save_pretrained(*models::make_causal_lm(config, init), config, model, false, tokenizer);
  std::ofstream(data) << "The quick brown fox jumps over the lazy dog.\n\nA second document, a little longer than "
                         "the first one, so that the windows differ.\n";
  const std::string args = "eval --model '" + model.string() + "' --task ppl --data '" + data.string() + "'";
  const CliRun cpu = run_liandan(args + " --device cpu", tmp.path());
  const CliRun gpu = run_liandan(args + " --device cuda", tmp.path());
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
  for (const char* row : {"documents", "windows", "tokens"})
    EXPECT_EQ(table_value(gpu.out, row), table_value(cpu.out, row)) << row;
  for (const char* row : {"nll", "ppl"}) {
    const double c = std::stod(table_value(cpu.out, row)), g = std::stod(table_value(gpu.out, row));
    EXPECT_NEAR(g, c, 1e-4 * c) << row;  // printed to 4 decimals; ppl of a random model is ~ its vocabulary
  }
}

}  // namespace
}  // namespace ld::test
