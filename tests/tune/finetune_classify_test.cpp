// `liandan finetune` with finetune.task classify on the separable synthetic task (texts from two
// disjoint vocabularies): full and LoRA fine-tuning reach >= 95% held-out accuracy, reported with
// macro F1 in metrics.jsonl; the outputs (a classifier folder; a PEFT SEQ_CLS adapter with the head
// under PEFT's key) reload; a resume continues bit for bit; bad inputs fail before training.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "finetune_task_fixture.hpp"
#include "io/safetensors.hpp"
#include "train/stop_request.hpp"
#include "tune/finetune_classify.hpp"
#include "tune/sequence_classifier.hpp"

namespace ld::tune {
namespace {

namespace fs = std::filesystem;
using ld::test::TempDir;
using test::run_quietly;
using test::task_fixture;

struct ClassifyFiles {
  TempDir dir{"finetune_classify"};
  fs::path train = dir / "train.jsonl", val = dir / "val.jsonl";
  ClassifyFiles() {
    write_classify_jsonl(train, separable_classification_task(200, 5));
    write_classify_jsonl(val, separable_classification_task(100, 6));
  }
};

const ClassifyFiles& files() {
  static const ClassifyFiles f;
  return f;
}

train::RunConfig classify_config(const std::string& method, const fs::path& out, int64_t steps, double lr,
                                 const std::vector<train::Override>& overrides = {}) {
  const std::string yaml = "model: {from: " + task_fixture().base.string() + "}\nfinetune: {method: " + method +
                           ", task: classify}\ndata: {train: " + files().train.string() +
                           ", val: " + files().val.string() + "}\neval: {every: " + std::to_string(steps) + "}\n" +
                           test::train_yaml(out, steps, lr);
  return train::parse_run_config(yaml, "classify.yaml", overrides);
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(FinetuneClassify, FullReachesHighHeldOutAccuracy) {
  TempDir dir("classify_full");
  run_quietly(classify_config("full", dir / "run", 40, 3e-3));
  const std::vector<nlohmann::json> evals = test::eval_lines(dir / "run");
  ASSERT_EQ(evals.size(), 1u);
  std::printf("classify full: accuracy %.3f, macro F1 %.3f\n", evals[0]["accuracy"].get<double>(),
              evals[0]["macro_f1"].get<double>());
  EXPECT_GE(evals[0]["accuracy"].get<double>(), 0.95);
  EXPECT_GE(evals[0]["macro_f1"].get<double>(), 0.95);
  EXPECT_EQ(evals[0]["examples"].get<int64_t>(), 100);
  // The output is a transformers classifier folder with the data's labels.
  const auto reloaded = load_sequence_classifier(dir / "run/model");
  EXPECT_EQ(reloaded->label_names(), (std::vector<std::string>{"a", "b"}));
}

TEST(FinetuneClassify, LoraTrainsTheHeadAndSavesItInPeftLayout) {
  TempDir dir("classify_lora");
  run_quietly(classify_config("lora", dir / "run", 60, 1e-2, {{"lora.target_modules", "[all-linear]"}}));
  const std::vector<nlohmann::json> evals = test::eval_lines(dir / "run");
  ASSERT_EQ(evals.size(), 1u);
  std::printf("classify lora: accuracy %.3f\n", evals[0]["accuracy"].get<double>());
  EXPECT_GE(evals[0]["accuracy"].get<double>(), 0.95);
  const fs::path adapter = dir / "run/adapter";
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(adapter / "adapter_config.json"));
  EXPECT_EQ(config["task_type"], "SEQ_CLS");
  EXPECT_EQ(config["modules_to_save"], nlohmann::json::array({"score"}));
  const io::SafetensorsFile weights = io::SafetensorsFile::open(adapter / "adapter_model.safetensors");
  ASSERT_TRUE(weights.contains(kPeftScoreKey));
  EXPECT_EQ(weights.get(kPeftScoreKey).shape(), (Shape{2, 32}));
  // The base stays frozen: no base weight is in the adapter.
  for (const io::TensorInfo& t : weights.tensors())
    EXPECT_TRUE(t.name == kPeftScoreKey || t.name.find("lora_") != std::string::npos) << t.name;
}

TEST(FinetuneClassify, ResumeIsExact) {
  TempDir dir("classify_resume");
  const std::vector<train::Override> o = {{"lora.dropout", "0.1"}, {"checkpoint.every", "3"}, {"eval.every", "0"}};
  const train::TrainResult straight = run_quietly(classify_config("lora", dir / "a", 6, 1e-2, o));
  train::TrainOptions first;
  first.print = false;
  first.on_step = [](const train::StepReport& r) {
    if (r.step == 3) train::request_stop();
  };
  const train::TrainResult part1 = finetune(classify_config("lora", dir / "b", 6, 1e-2, o), first);
  ASSERT_TRUE(part1.interrupted);
  const train::TrainResult part2 = run_quietly(classify_config("lora", dir / "b", 6, 1e-2, o), dir / "b");
  std::vector<double> joined = part1.losses;
  joined.insert(joined.end(), part2.losses.begin(), part2.losses.end());
  ASSERT_EQ(joined.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(joined[i], straight.losses[i]) << "step " << i + 1;
  EXPECT_TRUE(read_bytes(dir / "a/adapter/adapter_model.safetensors") ==
              read_bytes(dir / "b/adapter/adapter_model.safetensors"))
      << "the adapters (LoRA and head) differ";
}

void expect_error(const std::vector<train::Override>& o, const std::vector<std::string>& words,
                  const std::string& method = "full") {
  TempDir dir("classify_bad");
  const std::string message =
      ld::test::error_message([&] { run_quietly(classify_config(method, dir / "run", 2, 1e-3, o)); });
  for (const std::string& w : words) EXPECT_NE(message.find(w), std::string::npos) << message << "\nlacks " << w;
  EXPECT_FALSE(fs::exists(dir / "run")) << "a run that cannot start leaves no trace";
}

TEST(FinetuneClassify, BadInputsFailBeforeTraining) {
  // A label outside data.labels: the file and line of the first record carrying it.
  expect_error({{"data.labels", "[a]"}}, {files().train.string() + ":", "'b'"});
  expect_error({{"lora.target_modules", "[no_such_proj]"}}, {"no_such_proj"}, "lora");
  expect_error({{"finetune.method", "adapter"}}, {"finetune.task=classify", "adapter"});
  expect_error({{"data.packing", "true"}}, {"data.packing"});
  // A classifier base whose head has another number of labels.
  TempDir dir("classify_bad_head");
  run_quietly(classify_config("full", dir / "first", 1, 1e-3, {{"eval.every", "0"}}));
  expect_error({{"model.from", (dir / "first/model").string()}, {"data.labels", "[a, b, c]"}},
               {"3 labels", "num_labels=2"});
}

}  // namespace
}  // namespace ld::tune
