// `liandan finetune` with finetune.task multitask: two instruction datasets (arithmetic and string
// reversal) mixed per micro-batch; each evaluation reports every dataset's metrics under its name;
// a dataset of weight 0 is never drawn, so weights [1, 0] train exactly as sft on the first dataset
// alone (the same batches, losses equal bit for bit); a resume is exact; bad inputs fail before
// training with one clear error.
#include <gtest/gtest.h>

#include "finetune_task_fixture.hpp"
#include "train/stop_request.hpp"

namespace ld::tune {
namespace {

namespace fs = std::filesystem;
using ld::test::TempDir;
using test::run_quietly;
using test::task_fixture;

struct MultitaskFiles {
  TempDir dir{"finetune_multitask"};
  fs::path arith = dir / "arith.jsonl", arith_val = dir / "arith_val.jsonl";
  fs::path rev = dir / "rev.jsonl", rev_val = dir / "rev_val.jsonl";
  MultitaskFiles() {
    write_alpaca_jsonl(arith, arithmetic_task(48, 2));
    write_alpaca_jsonl(arith_val, arithmetic_task(4, 3));
    write_chat_jsonl(rev, reversal_task(40, 4));
    write_chat_jsonl(rev_val, reversal_task(4, 5));
  }
};

const MultitaskFiles& files() {
  static const MultitaskFiles f;
  return f;
}

std::string head_yaml(const std::string& task) {
  return "model: {from: " + task_fixture().base.string() + "}\nfinetune: {method: lora, task: " + task + "}\n";
}

train::RunConfig multitask_config(const fs::path& out, int64_t steps, const std::vector<train::Override>& o = {}) {
  const MultitaskFiles& f = files();
  const std::string yaml = head_yaml("multitask") + "multitask: {train: [" + f.arith.string() + ", " +
                           f.rev.string() + "], val: [" + f.arith_val.string() + ", " + f.rev_val.string() +
                           "], names: [arith, rev]}\neval: {every: " + std::to_string(steps) +
                           ", batches: 1, sample_tokens: 6}\n" + test::train_yaml(out, steps, 1e-2);
  return train::parse_run_config(yaml, "multitask.yaml", o);
}

TEST(FinetuneMultitask, ReportsMetricsPerDataset) {
  TempDir dir("multitask_metrics");
  run_quietly(multitask_config(dir / "run", 4, {{"multitask.sampling", "temperature"}, {"multitask.temperature", "2"}}));
  const std::vector<nlohmann::json> evals = test::eval_lines(dir / "run");
  ASSERT_EQ(evals.size(), 1u);
  for (const char* key : {"arith/val_loss", "arith/exact_match", "rev/val_loss", "rev/exact_match", "val_loss"})
    EXPECT_TRUE(evals[0].contains(key)) << key << " missing from " << evals[0].dump();
  const double mean = (evals[0]["arith/val_loss"].get<double>() + evals[0]["rev/val_loss"].get<double>()) / 2;
  EXPECT_NEAR(evals[0]["val_loss"].get<double>(), mean, 1e-12);
}

TEST(FinetuneMultitask, AZeroWeightDatasetIsNeverDrawn) {
  TempDir dir("multitask_weights");
  const train::TrainResult mixed =
      run_quietly(multitask_config(dir / "mixed", 5, {{"multitask.weights", "[1, 0]"}, {"eval.every", "0"}}));
  const std::string sft_yaml = head_yaml("sft") + "data: {train: " + files().arith.string() + "}\neval: {every: 0}\n" +
                               test::train_yaml(dir / "sft", 5, 1e-2);
  const train::TrainResult alone = run_quietly(train::parse_run_config(sft_yaml, "sft.yaml"));
  ASSERT_EQ(mixed.losses.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(mixed.losses[i], alone.losses[i]) << "step " << i + 1;
}

TEST(FinetuneMultitask, ResumeIsExact) {
  TempDir dir("multitask_resume");
  const std::vector<train::Override> o = {{"checkpoint.every", "3"}, {"eval.every", "0"}, {"lora.dropout", "0.1"}};
  const train::TrainResult straight = run_quietly(multitask_config(dir / "a", 6, o));
  train::TrainOptions first;
  first.print = false;
  first.on_step = [](const train::StepReport& r) {
    if (r.step == 3) train::request_stop();
  };
  const train::TrainResult part1 = finetune(multitask_config(dir / "b", 6, o), first);
  ASSERT_TRUE(part1.interrupted);
  const train::TrainResult part2 = run_quietly(multitask_config(dir / "b", 6, o), dir / "b");
  std::vector<double> joined = part1.losses;
  joined.insert(joined.end(), part2.losses.begin(), part2.losses.end());
  ASSERT_EQ(joined.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(joined[i], straight.losses[i]) << "step " << i + 1;
}

void expect_error(const std::vector<train::Override>& o, const std::vector<std::string>& words) {
  TempDir dir("multitask_bad");
  const std::string message = ld::test::error_message([&] { run_quietly(multitask_config(dir / "run", 2, o)); });
  for (const std::string& w : words) EXPECT_NE(message.find(w), std::string::npos) << message << "\nlacks " << w;
  EXPECT_FALSE(fs::exists(dir / "run")) << "a run that cannot start leaves no trace";
}

TEST(FinetuneMultitask, BadInputsFailBeforeTraining) {
  TempDir dir("multitask_bad_data");
  const fs::path robot = dir / "robot.jsonl";
  test::write_text(robot, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                          "{\"role\": \"assistant\", \"content\": \"yo\"}]}\n"
                          "{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}, "
                          "{\"role\": \"assistant\", \"content\": \"yo\"}]}\n");
  expect_error({{"multitask.train", "[" + files().arith.string() + ", " + robot.string() + "]"}},
               {robot.string() + ":2", "robot"});
  expect_error({{"multitask.weights", "[1]"}}, {"multitask.weights", "1 entries for 2 datasets"});
  expect_error({{"multitask.weights", "[1, x]"}}, {"multitask.weights[1]", "\"x\""});
  expect_error({{"multitask.names", "[a, a]"}}, {"\"a\"", "multitask.names"});
  expect_error({{"lora.target_modules", "[no_such_proj]"}}, {"no_such_proj"});
  expect_error({{"data.labels", "[a, b]"}}, {"data.labels", "classify"});
}

}  // namespace
}  // namespace ld::tune
