// Continual fine-tuning through `liandan finetune` (continual.*): task A tells fruit words (label a)
// from landscape words (b); task B tells colours (a) from numbers (b) in texts whose other words are
// landscape words (with a) or fruit words (with b). Training on B after A forgets A (its accuracy on A's held-out
// texts drops, reported as "forgetting" at each evaluation); experience replay of A's data and EWC
// (Fisher on A's data) each reduce that drop. The numbers are printed (docs/finetuning.md has them).
#include <gtest/gtest.h>

#include <cstdio>

#include "finetune_task_fixture.hpp"
#include "train/stop_request.hpp"
#include "tune/ewc.hpp"
#include "tune/finetune_continual.hpp"

namespace ld::tune {
namespace {

namespace fs = std::filesystem;
using ld::test::TempDir;
using test::run_quietly;
using test::task_fixture;

// Task B: 4..9 words, half of them colours (label a) or numbers (b), the other half landscape
// words (with a) or fruit words (with b): A's words point the other way in B, so B alone unlearns
// them, while colours and numbers let one model serve both tasks.
std::vector<LabeledText> colours_or_numbers(int64_t count, int64_t salt) {
  const std::vector<std::string> colours = {"red", "green", "blue", "black", "white", "pink", "gold", "gray"};
  const std::vector<std::string> numbers = {"one", "two", "three", "four", "five", "six", "seven", "eight"};
  const std::vector<std::string> fruit = {"apple", "pear", "plum", "grape", "melon", "cherry", "lemon", "peach"};
  const std::vector<std::string> land = {"river", "stone", "cloud", "hill", "storm", "field", "lake", "wind"};
  std::vector<LabeledText> out;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t h = (i + salt) * 2654435761 % 1000003;
    const bool colour = (h / 7) % 2 == 0;
    std::string text;
    for (int64_t w = 0, n = 4 + h % 6; w < n; ++w) {
      const int64_t r = (h / 13 + w * 7919) % 1009;
      const std::vector<std::string>& words =
          (w + h) % 2 == 0 ? (colour ? colours : numbers) : (colour ? land : fruit);
      text += (w ? " " : "") + words[size_t((r / 2 + w * 5) % 8)];
    }
    out.push_back({text, colour ? "a" : "b"});
  }
  return out;
}

// Task A trained once: its model folder is where every task-B run starts.
struct TaskA {
  TempDir dir{"continual_a"};
  fs::path train = dir / "a_train.jsonl", val = dir / "a_val.jsonl";
  fs::path b_train = dir / "b_train.jsonl", b_val = dir / "b_val.jsonl";
  fs::path run = dir / "run";
  double accuracy = 0;
  TaskA() {
    write_classify_jsonl(train, separable_classification_task(160, 5));
    write_classify_jsonl(val, separable_classification_task(80, 6));
    write_classify_jsonl(b_train, colours_or_numbers(160, 1));
    write_classify_jsonl(b_val, colours_or_numbers(80, 999));
    run_quietly(config(train, val, run, 40));
    accuracy = test::eval_lines(run).back()["accuracy"].get<double>();
  }
  train::RunConfig config(const fs::path& train_file, const fs::path& val_file, const fs::path& out, int64_t steps,
                          const fs::path& from = {}, const std::vector<train::Override>& o = {}) const {
    const std::string base = from.empty() ? task_fixture().base.string() : from.string();
    const std::string yaml = "model: {from: " + base + "}\nfinetune: {method: full, task: classify}\ndata: {train: " +
                             train_file.string() + ", val: " + val_file.string() +
                             "}\neval: {every: " + std::to_string(steps) + "}\n" +
                             test::train_yaml(out, steps, 3e-3);
    return train::parse_run_config(yaml, "continual.yaml", o);
  }
};

const TaskA& task_a() {
  static const TaskA a;
  return a;
}

// Task B from A's model; returns the last evaluation (B's accuracy, A's accuracy, forgetting).
nlohmann::json train_b(const std::string& name, const std::vector<train::Override>& extra) {
  const TaskA& a = task_a();
  std::vector<train::Override> o = {{"continual.earlier_val", a.val.string()}};
  o.insert(o.end(), extra.begin(), extra.end());
  TempDir dir("continual_b");
  run_quietly(a.config(a.b_train, a.b_val, dir / "run", 40, a.run / "model", o));
  const nlohmann::json last = test::eval_lines(dir / "run").back();
  std::printf("continual %-8s: B accuracy %.3f | A accuracy %.3f (start %.3f) | forgetting %.3f\n", name.c_str(),
              last["accuracy"].get<double>(), last["earlier_accuracy"].get<double>(),
              last["earlier_accuracy_start"].get<double>(), last["forgetting"].get<double>());
  return last;
}

TEST(FinetuneContinual, ReplayAndEwcEachReduceForgetting) {
  ASSERT_GE(task_a().accuracy, 0.95) << "task A must be learnt first";
  const nlohmann::json plain = train_b("plain", {});
  const nlohmann::json replay = train_b("replay", {{"continual.replay_from", task_a().train.string()},
                                                   {"continual.replay_fraction", "0.3"}});
  const nlohmann::json ewc = train_b("ewc", {{"continual.replay_from", task_a().train.string()},
                                             {"continual.ewc_lambda", "1e6"},
                                             {"continual.fisher_batches", "10"}});
  EXPECT_NEAR(plain["earlier_accuracy_start"].get<double>(), task_a().accuracy, 1e-12);
  EXPECT_GE(plain["accuracy"].get<double>(), 0.8) << "task B is learnt";
  EXPECT_GE(plain["forgetting"].get<double>(), 0.3) << "training on B alone forgets A";
  EXPECT_LT(replay["forgetting"].get<double>(), plain["forgetting"].get<double>() - 0.15);
  EXPECT_LT(ewc["forgetting"].get<double>(), plain["forgetting"].get<double>() - 0.15);
}

TEST(FinetuneContinual, EwcIsSavedWithTheRunAndResumesExactly) {
  const TaskA& a = task_a();
  TempDir dir("continual_resume");
  const std::vector<train::Override> o = {{"continual.replay_from", a.run.string()},  // a run folder: its data.train
                                          {"continual.replay_fraction", "0.25"},
                                          {"continual.ewc_lambda", "100"},
                                          {"continual.fisher_batches", "2"},
                                          {"checkpoint.every", "3"},
                                          {"eval.every", "0"}};
  const train::TrainResult straight = run_quietly(a.config(a.b_train, a.b_val, dir / "a", 6, a.run / "model", o));
  train::TrainOptions first;
  first.print = false;
  first.on_step = [](const train::StepReport& r) {
    if (r.step == 3) train::request_stop();
  };
  const train::TrainResult part1 = finetune(a.config(a.b_train, a.b_val, dir / "b", 6, a.run / "model", o), first);
  ASSERT_TRUE(part1.interrupted);
  const fs::path checkpoint = dir / "b/checkpoints" / train::checkpoint_name(3);
  EXPECT_TRUE(fs::exists(checkpoint / kEwcFile));
  EXPECT_TRUE(fs::exists(checkpoint / kContinualFile));
  const train::TrainResult part2 =
      run_quietly(a.config(a.b_train, a.b_val, dir / "b", 6, a.run / "model", o), dir / "b");
  std::vector<double> joined = part1.losses;
  joined.insert(joined.end(), part2.losses.begin(), part2.losses.end());
  ASSERT_EQ(joined.size(), 6u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(joined[i], straight.losses[i]) << "step " << i + 1;
  const Ewc saved = Ewc::load(dir / "a" / kEwcFile);
  EXPECT_EQ(saved.batches(), 2);
  EXPECT_FALSE(saved.entries().empty());
}

TEST(FinetuneContinual, BadInputsFailBeforeTraining) {
  const TaskA& a = task_a();
  TempDir dir("continual_bad");
  const auto message = [&](const std::vector<train::Override>& o) {
    return ld::test::error_message([&] { run_quietly(a.config(a.b_train, a.b_val, dir / "run", 2, {}, o)); });
  };
  ld::test::expect_mentions(message({{"continual.ewc_lambda", "10"}}), {"continual.replay_from"});
  ld::test::expect_mentions(message({{"continual.replay_from", "/no/such/dir/"}, {"continual.replay_fraction", "0.2"}}),
                            {"/no/such/dir"});
  EXPECT_FALSE(fs::exists(dir / "run"));
}

}  // namespace
}  // namespace ld::tune
