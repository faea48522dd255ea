// Reading metrics.jsonl: fields, ordering, and the errors a user sees for a broken file.
#include <gtest/gtest.h>

#include "plot/metrics_log.hpp"
#include "test_util.hpp"

namespace ld::plot {
namespace {

TEST(PlotMetricsLog, ReadsTrainAndEvalLinesIgnoringUnknownFields) {
  const RunMetrics m = parse_metrics(
      "{\"type\": \"train\", \"step\": 2, \"loss\": 9.5, \"lr\": 1e-4, \"tokens_per_s\": 100.0, \"tokens\": 8, \"gnorm\": 1}\n"
      "{\"type\": \"checkpoint\", \"step\": 2, \"path\": \"x\"}\n"
      "\n"
      "{\"type\": \"train\", \"step\": 1, \"loss\": 10.0, \"lr\": 5e-5}\r\n"
      "{\"type\": \"eval\", \"step\": 2, \"val_loss\": 9.75, \"val_ppl\": 17154.2}\n",
      "m.jsonl");
  ASSERT_EQ(m.train.size(), 2u);
  EXPECT_EQ(m.train[0].step, 1);  // sorted by step
  EXPECT_EQ(m.train[0].loss, 10.0);
  EXPECT_EQ(*m.train[0].lr, 5e-5);
  EXPECT_EQ(m.train[1].loss, 9.5);
  ASSERT_EQ(m.eval.size(), 1u);
  EXPECT_EQ(m.eval[0].step, 2);
  EXPECT_EQ(m.eval[0].val_loss, 9.75);
  EXPECT_TRUE(m.warnings.empty());
}

TEST(PlotMetricsLog, ResumedRunKeepsTheLaterLineForARepeatedStep) {
  const RunMetrics m = parse_metrics(
      "{\"type\":\"train\",\"step\":1,\"loss\":5}\n{\"type\":\"train\",\"step\":2,\"loss\":4}\n"
      "{\"type\":\"train\",\"step\":2,\"loss\":3.5}\n{\"type\":\"train\",\"step\":3,\"loss\":3}\n",
      "m.jsonl");
  ASSERT_EQ(m.train.size(), 3u);
  EXPECT_EQ(m.train[1].loss, 3.5);
}

TEST(PlotMetricsLog, MalformedLinesNameFileAndLine) {
  const std::string good = "{\"type\":\"train\",\"step\":1,\"loss\":5,\"lr\":1}\n";
  auto msg = test::error_message([&] { parse_metrics(good + "{\"type\":\"train\",\"step\":2,\n" + good, "run/metrics.jsonl"); });
  test::expect_mentions(msg, {"run/metrics.jsonl:2: not valid JSON"});
  msg = test::error_message([&] { parse_metrics(good + good + "[1, 2]\n", "m.jsonl"); });
  test::expect_mentions(msg, {"m.jsonl:3: expected a JSON object"});
  msg = test::error_message([&] { parse_metrics("{\"step\":1,\"loss\":5}\n", "m.jsonl"); });
  test::expect_mentions(msg, {"m.jsonl:1: missing \"type\""});
  msg = test::error_message([&] { parse_metrics(good + "{\"type\":\"train\",\"step\":2}\n", "m.jsonl"); });
  test::expect_mentions(msg, {"m.jsonl:2:", "no \"loss\""});
  msg = test::error_message([&] { parse_metrics("{\"type\":\"eval\",\"step\":2,\"val_loss\":\"3.1\"}\n", "m.jsonl"); });
  test::expect_mentions(msg, {"m.jsonl:1:", "\"val_loss\" must be a number", "\"3.1\""});
  // A broken last line that did end with a newline was written whole: still an error.
  msg = test::error_message([&] { parse_metrics(good + "{\"type\":\"tr\n", "m.jsonl"); });
  test::expect_mentions(msg, {"m.jsonl:2: not valid JSON"});
}

TEST(PlotMetricsLog, TruncatedLastLineIsSkippedWithAWarning) {
  const RunMetrics m = parse_metrics(
      "{\"type\":\"train\",\"step\":1,\"loss\":5}\n{\"type\":\"train\",\"step\":2,\"loss\":4}\n{\"type\":\"train\",\"st",
      "m.jsonl");
  EXPECT_EQ(m.train.size(), 2u);
  ASSERT_EQ(m.warnings.size(), 1u);
  test::expect_mentions(m.warnings[0], {"m.jsonl:3:", "incomplete last line"});
}

TEST(PlotMetricsLog, NullLossIsDroppedWithAWarning) {
  const RunMetrics m = parse_metrics(
      "{\"type\":\"train\",\"step\":1,\"loss\":5}\n{\"type\":\"train\",\"step\":2,\"loss\":null}\n"
      "{\"type\":\"eval\",\"step\":2,\"val_loss\":null}\n",
      "m.jsonl");
  EXPECT_EQ(m.train.size(), 1u);
  EXPECT_TRUE(m.eval.empty());
  ASSERT_EQ(m.warnings.size(), 1u);
  test::expect_mentions(m.warnings[0], {"dropped 2 point(s)", "null"});
}

TEST(PlotMetricsLog, MissingFileIsAnError) {
  test::expect_mentions(test::error_message([] { read_metrics("/no/such/run/metrics.jsonl"); }),
                        {"/no/such/run/metrics.jsonl: cannot open"});
}

}  // namespace
}  // namespace ld::plot
