// `liandan metrics ...`: the JSON it prints is the library's numbers, and bad input is one error line
// naming the file (and line) with a non-zero exit.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "eval/bleu.hpp"
#include "eval/chrf.hpp"
#include "eval/classification.hpp"
#include "eval/rouge.hpp"
#include "test_util.hpp"

namespace ld::eval {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

class MetricsCli : public ::testing::Test {
 protected:
  test::TempDir dir{"liandan_metrics_cli"};

  std::string file(const std::string& name, const std::string& text) {
    write_file(dir / name, text);
    return (dir / name).string();
  }

  RunResult run(const std::string& args) {
    const std::string cmd = std::string("'") + LIANDAN_BINARY + "' metrics " + args + " >'" + (dir / "out").string() +
                            "' 2>'" + (dir / "err").string() + "'";
    int status = std::system(cmd.c_str());
    RunResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(dir / "out");
    r.err = read_file(dir / "err");
    return r;
  }

  nlohmann::json run_json(const std::string& args) {
    RunResult r = run(args + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one JSON object on one line: " << r.out;
    return nlohmann::json::parse(r.out);
  }

  // One line "liandan: error: ..." on stderr that mentions every part, nothing on stdout, exit 1.
  void expect_error(const std::string& args, std::initializer_list<const char*> parts) {
    RunResult r = run(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("liandan: error: ", 0), 0u) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    test::expect_mentions(r.err, parts);
  }
};

const std::vector<std::string> kHyps = {"The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."};
const std::vector<std::string> kRef1 = {"The dog bit the man.", "It was not unexpected.", "The man bit him first."};
const std::vector<std::string> kRef2 = {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."};

std::string lines(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& s : items) text += s + "\n";
  return text;
}

TEST_F(MetricsCli, BleuJsonIsTheLibrarysScore) {
  const std::string h = file("h.txt", lines(kHyps)), r1 = file("r1.txt", lines(kRef1)), r2 = file("r2.txt", lines(kRef2));
  nlohmann::json j = run_json("bleu --ref " + r1 + " --ref " + r2 + " --hyp " + h);
  BleuScore lib = corpus_bleu(kHyps, {kRef1, kRef2});
  EXPECT_EQ(j["metric"], "bleu");
  EXPECT_NEAR(j["score"].get<double>(), lib.score, 1e-12);
  EXPECT_NEAR(j["score"].get<double>(), 48.530827, 1e-6);  // sacreBLEU's README example (test_bleu.py)
  EXPECT_EQ(j["signature"], lib.signature);
  EXPECT_EQ(j["counts"].get<std::vector<int64_t>>(), lib.stats.correct);
  EXPECT_EQ(j["totals"].get<std::vector<int64_t>>(), lib.stats.total);
  EXPECT_EQ(j["sys_len"].get<int64_t>(), lib.stats.sys_len);
  EXPECT_EQ(j["ref_len"].get<int64_t>(), lib.stats.ref_len);
  EXPECT_NEAR(j["bp"].get<double>(), lib.bp, 1e-15);

  BleuOptions none;
  none.tokenize = BleuTokenize::kNone;
  none.smooth = BleuSmooth::kNone;
  nlohmann::json raw = run_json("bleu --ref " + r1 + " --ref " + r2 + " --hyp " + h + " --tokenize none --smooth none");
  EXPECT_NEAR(raw["score"].get<double>(), corpus_bleu(kHyps, {kRef1, kRef2}, none).score, 1e-12);
  EXPECT_EQ(raw["signature"], corpus_bleu(kHyps, {kRef1, kRef2}, none).signature);
}

TEST_F(MetricsCli, BleuTableNamesScoreAndSignature) {
  const std::string h = file("h.txt", lines(kHyps)), r1 = file("r1.txt", lines(kRef1));
  RunResult r = run("bleu --ref " + r1 + " --hyp " + h);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  char score[32];
  std::snprintf(score, sizeof score, "%.2f", corpus_bleu(kHyps, {kRef1}).score);
  test::expect_mentions(r.out, {"BLEU", score, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:"});
}

TEST_F(MetricsCli, ChrfAndRougeJsonAreTheLibrarysScores) {
  const std::string h = file("h.txt", lines(kHyps)), r1 = file("r1.txt", lines(kRef1));
  nlohmann::json chrf = run_json("chrf --ref " + r1 + " --hyp " + h);
  EXPECT_NEAR(chrf["score"].get<double>(), corpus_chrf(kHyps, {kRef1}).score, 1e-12);
  EXPECT_EQ(chrf["signature"], corpus_chrf(kHyps, {kRef1}).signature);

  for (bool stem : {false, true}) {
    nlohmann::json rouge = run_json("rouge --ref " + r1 + " --hyp " + h + (stem ? " --stemmer" : ""));
    RougeScores lib = rouge_corpus_mean(kRef1, kHyps, stem);
    EXPECT_EQ(rouge["stemmer"], stem);
    EXPECT_NEAR(rouge["rouge1"]["fmeasure"].get<double>(), lib.rouge1.fmeasure, 1e-12);
    EXPECT_NEAR(rouge["rouge2"]["precision"].get<double>(), lib.rouge2.precision, 1e-12);
    EXPECT_NEAR(rouge["rougeL"]["recall"].get<double>(), lib.rougeL.recall, 1e-12);
    EXPECT_NEAR(rouge["rougeLsum"]["fmeasure"].get<double>(), lib.rougeLsum.fmeasure, 1e-12);
  }
  // ROUGE-Lsum's sentence breaks inside a line: rouge_scorer_test.py testRougeLsum, 0.5333 (4/7.5).
  const std::string t = file("t.txt", "w1 w2 w3 w4 w5\n"), p = file("p.txt", "w1 w2 w6 w7 w8<n>w1 w3 w8 w9 w5\n");
  nlohmann::json lsum = run_json("rouge --ref " + t + " --hyp " + p + " --sentence-separator '<n>'");
  EXPECT_NEAR(lsum["rougeLsum"]["fmeasure"].get<double>(), 0.32 / 0.6, 1e-12);
}

TEST_F(MetricsCli, F1AndAccuracyJson) {
  const std::string ref = file("ref.txt", "cat\ncat\ndog\ndog\ndog\nbird\n");
  const std::string hyp = file("hyp.txt", "cat\ndog\ndog\ndog\ncat\ncat");  // no final newline
  nlohmann::json f1 = run_json("f1 --ref " + ref + " --hyp " + hyp);
  EXPECT_EQ(f1["labels"].get<std::vector<std::string>>(), (std::vector<std::string>{"bird", "cat", "dog"}));
  EXPECT_EQ(f1["confusion_matrix"].get<std::vector<std::vector<int64_t>>>(),
            (std::vector<std::vector<int64_t>>{{0, 1, 0}, {0, 1, 1}, {0, 1, 2}}));
  EXPECT_NEAR(f1["macro"]["f1"].get<double>(), 16.0 / 45, 1e-12);
  EXPECT_NEAR(f1["weighted"]["f1"].get<double>(), 7.0 / 15, 1e-12);
  EXPECT_NEAR(f1["micro"]["f1"].get<double>(), 0.5, 1e-12);
  EXPECT_EQ(f1["per_class"][1]["label"], "cat");
  EXPECT_NEAR(f1["per_class"][1]["precision"].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_EQ(f1["per_class"][2]["support"], 3);

  // A label set adds a class seen nowhere, in the set's order; it counts 0 in the macro average.
  const std::string labels = file("labels.txt", "dog\ncat\nbird\nfish\n");
  nlohmann::json with_set = run_json("f1 --ref " + ref + " --hyp " + hyp + " --labels " + labels);
  EXPECT_EQ(with_set["labels"].get<std::vector<std::string>>(),
            (std::vector<std::string>{"dog", "cat", "bird", "fish"}));
  EXPECT_NEAR(with_set["macro"]["f1"].get<double>(), (16.0 / 15) / 4, 1e-12);

  nlohmann::json acc = run_json("accuracy --ref " + ref + " --hyp " + hyp);
  EXPECT_DOUBLE_EQ(acc["accuracy"].get<double>(), 0.5);
  EXPECT_EQ(acc["correct"], 3);
  EXPECT_EQ(acc["total"], 6);
}

TEST_F(MetricsCli, FilesOfDifferentLengths) {
  const std::string h = file("h.txt", "a b c\nd e f\n"), r = file("r.txt", "a b c\nd e f\ng h i\n");
  expect_error("bleu --ref " + r + " --hyp " + h, {"r.txt:3", "h.txt", "2 lines", "3"});
  expect_error("chrf --ref " + r + " --hyp " + h, {"r.txt:3", "h.txt"});
  expect_error("rouge --ref " + h + " --hyp " + r, {"r.txt:3", "h.txt"});
  const std::string lr = file("lr.txt", "x\ny\n"), lh = file("lh.txt", "x\ny\nz\n");
  expect_error("f1 --ref " + lr + " --hyp " + lh, {"lh.txt:3", "lr.txt"});
  expect_error("accuracy --ref " + lr + " --hyp " + lh, {"lh.txt:3", "lr.txt"});
}

TEST_F(MetricsCli, EmptyFile) {
  const std::string empty = file("empty.txt", ""), r = file("r.txt", "a b c\n");
  expect_error("bleu --ref " + r + " --hyp " + empty, {"empty.txt", "empty"});
  expect_error("f1 --ref " + empty + " --hyp " + r, {"empty.txt", "empty"});
  expect_error("rouge --ref " + r + " --hyp " + empty, {"empty.txt", "empty"});
  expect_error("bleu --ref " + (dir / "missing.txt").string() + " --hyp " + r, {"missing.txt", "cannot open"});
}

TEST_F(MetricsCli, LabelOutsideTheLabelSet) {
  const std::string labels = file("labels.txt", "pos\nneg\n");
  const std::string ref = file("ref.txt", "pos\nneg\npos\n"), hyp = file("hyp.txt", "pos\nneutral\npos\n");
  expect_error("f1 --ref " + ref + " --hyp " + hyp + " --labels " + labels,
               {"hyp.txt:2", "'neutral'", "not in the label set", "labels.txt"});
  expect_error("accuracy --ref " + hyp + " --hyp " + ref + " --labels " + labels, {"hyp.txt:2", "'neutral'"});
  const std::string twice = file("twice.txt", "pos\nneg\npos\n");
  expect_error("f1 --ref " + ref + " --hyp " + ref + " --labels " + twice, {"twice.txt:3", "'pos'", "twice"});
  const std::string blank = file("blank.txt", "pos\n\nneg\n");
  expect_error("f1 --ref " + blank + " --hyp " + ref, {"blank.txt:2", "empty label"});
}

}  // namespace
}  // namespace ld::eval
