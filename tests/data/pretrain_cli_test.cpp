// `liandan pretrain` end to end through the binary: `liandan data prepare` on a small generated
// corpus with the real GPT-2 tokenizer, a tiny GPT-2 trained with evaluation, samples and
// checkpoints; one-line errors; SIGINT writes a checkpoint and --resume continues from it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "test_util.hpp"
#include "train/checkpoint.hpp"

namespace ld {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs a shell command line; returns its exit status (-1 when it did not exit normally).
int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class PretrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path tokenizer = fs::path(LIANDAN_SHARED_DIR) / "tokenizers" / "gpt2";
    if (!fs::exists(tokenizer / "encoder.json")) GTEST_SKIP() << "no GPT-2 tokenizer at " << tokenizer;
    std::ofstream corpus(tmp_ / "corpus.txt");
    const char* animals[] = {"cat", "dog", "fox", "owl", "bee"};
    for (int d = 0; d < 200; ++d)
      corpus << "the " << animals[d % 5] << " sat on the mat and the " << animals[(d + 1) % 5]
             << " sat on the rug number " << d << ".\n\n";
    corpus.close();
    const std::string prepare = std::string(LIANDAN_BINARY) + " data prepare --input " + (tmp_ / "corpus.txt").string() +
                                " --tokenizer " + tokenizer.string() + " --out " + (tmp_ / "data").string() +
                                " --val-fraction 0.1 --dedup none --threads 1 > " + (tmp_ / "prepare.txt").string() + " 2>&1";
    ASSERT_EQ(run(prepare), 0) << read_text(tmp_ / "prepare.txt");
    std::ofstream(tmp_ / "run.yaml") << "model:\n  type: gpt2\n  n_layer: 1\n  n_head: 2\n  n_embd: 32\n"
                                     << "  vocab_size: 50257\n  n_positions: 64\n"
                                     << "data:\n  path: " << (tmp_ / "data").string() << "\n"
                                     << "train:\n  batch_size: 2\n  seq_len: 32\n  max_steps: 6\n  lr: 3e-3\n"
                                     << "  warmup_steps: 2\n  threads: 1\n"
                                     << "eval:\n  every: 3\n  batches: 2\n  samples: [\"the cat\"]\n  sample_tokens: 4\n"
                                     << "checkpoint:\n  every: 3\n"
                                     << "log:\n  every: 2\n";
  }

  // liandan pretrain with the config and extra arguments; output into out.txt.
  int pretrain(const std::string& args) {
    return run(std::string(LIANDAN_BINARY) + " pretrain --config " + (tmp_ / "run.yaml").string() + " " + args + " > " +
               (tmp_ / "out.txt").string() + " 2>&1");
  }
  std::string out() { return read_text(tmp_ / "out.txt"); }

  test::TempDir tmp_{"pretrain_cli"};
};

TEST_F(PretrainCli, TrainsEvaluatesAndCheckpoints) {
  const fs::path run_dir = tmp_ / "run";
  ASSERT_EQ(pretrain("--output_dir=" + run_dir.string()), 0) << out();
  test::expect_mentions(out(), {"step 1/6", "step 6/6", "eval step 3 | val loss", "eval step 6", "sample: the cat|",
                                "checkpoints/step-000006", "model saved to"});
  const std::string metrics = read_text(run_dir / "metrics.jsonl");
  test::expect_mentions(metrics, {"\"type\":\"train\"", "\"type\":\"eval\"", "\"val_ppl\"", "\"type\":\"sample\""});
  for (const char* f : {"resolved.yaml", "model/config.json", "model/model.safetensors", "model/encoder.json",
                        "checkpoints/step-000003/optimizer.safetensors", "checkpoints/step-000006/trainer_state.json"})
    EXPECT_TRUE(fs::exists(run_dir / f)) << f;
  // The final model generates with its own tokenizer files.
  EXPECT_EQ(run(std::string(LIANDAN_BINARY) + " generate --model " + (run_dir / "model").string() +
                " --prompt 'the dog' --max-new-tokens 3 > " + (tmp_ / "gen.txt").string() + " 2>&1"),
            0)
      << read_text(tmp_ / "gen.txt");

  // A second fresh run into the same folder is refused, as are an unknown precision and a bad override.
  EXPECT_EQ(pretrain("--output_dir=" + run_dir.string()), 1);
  test::expect_mentions(out(), {"liandan: error: output_dir", "already holds a run", "--resume"});
  EXPECT_EQ(pretrain("--output_dir=" + (tmp_ / "fp8").string() + " --train.precision=fp8"), 1);
  test::expect_mentions(out(), {"liandan: error:", "train.precision", "fp8"});
  EXPECT_FALSE(fs::exists(tmp_ / "fp8" / "metrics.jsonl"));
}

TEST_F(PretrainCli, SigintCheckpointsAndResumeContinues) {
  const fs::path run_dir = tmp_ / "long";
  // In the background with a long schedule; SIGINT once it has logged two steps (give up after 60 s).
  const std::string metrics = (run_dir / "metrics.jsonl").string();
  const std::string script =
      std::string(LIANDAN_BINARY) + " pretrain --config " + (tmp_ / "run.yaml").string() +
      " --train.max_steps=100000 --eval.every=0 --checkpoint.every=0 --output_dir=" + run_dir.string() + " > " +
      (tmp_ / "out.txt").string() + " 2>&1 & pid=$!; n=0; while [ $n -lt 600 ]; do " +
      "[ -f " + metrics + " ] && [ $(wc -l < " + metrics + ") -ge 2 ] && break; sleep 0.1; n=$((n+1)); done; " +
      "kill -INT $pid; wait $pid";
  EXPECT_EQ(run("sh -c '" + script + "'"), 0) << out();
  test::expect_mentions(out(), {"stopped at step", "on request", "--resume"});
  const auto saved = train::list_checkpoints(run_dir);
  ASSERT_EQ(saved.size(), 1u) << out();
  const int64_t step = saved[0].first;
  EXPECT_GE(step, 2);
  EXPECT_FALSE(fs::exists(run_dir / "model"));  // interrupted: no final model

  // Resume for two more steps (a shorter schedule than before: allowed, the rate follows it).
  const std::string more = std::to_string(step + 2);
  ASSERT_EQ(pretrain("--resume " + run_dir.string() + " --output_dir=" + run_dir.string() +
                     " --eval.every=0 --train.max_steps=" + more),
            0)
      << out();
  const std::string last_step = "step " + more + "/" + more;
  test::expect_mentions(out(), {"resuming from", last_step.c_str(), "model saved to"});
  EXPECT_EQ(train::list_checkpoints(run_dir).back().first, step + 2);
}

}  // namespace
}  // namespace ld
