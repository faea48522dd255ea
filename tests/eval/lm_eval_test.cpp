// `liandan eval` and the library under it (eval/lm_eval.hpp, eval/lm_eval_tasks.hpp):
// - ppl on stories260K (converted by the liandan binary) equals a float64 numpy llama2.c forward
//   (tests/eval/lm_eval_ref.py, reading the .bin itself) on ids from spm_encode, windows included;
// - a continuation's log-likelihood, batched and padded, equals the sum of log_softmax of a full
//   forward; acc and acc_norm part ways on an item where the lengths matter;
// - a tiny LLaMA fine-tuned here on "a+b= s" scores clearly above the untrained one in few-shot
//   choice evaluation, and classify over the same data agrees with choice;
// - generation scores equal the metrics library on hypotheses generated here, one at a time;
// - bad input: one clear error each, non-zero exit.
// stories260K's own tokenizer (tok512.model) is not in ../shared, so a 512-piece SentencePiece BPE is
// trained here with spm_train: the perplexities are those of mismatched ids, which is all an
// equality test needs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "eval/bleu.hpp"
#include "eval/classification.hpp"
#include "eval/lm_eval.hpp"
#include "eval/lm_eval_tasks.hpp"
#include "eval/rouge.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "tokenizer/byte_level_bpe.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/adamw.hpp"

namespace ld::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kStoriesBin = fs::path(LIANDAN_SHARED_DIR) / "models/stories260K/stories260K.bin";
const fs::path kFortunes = "/usr/share/games/fortunes/fortunes";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

struct RunResult {
  int rc = -1;
  std::string out, err;
};

RunResult run(const std::string& command, const fs::path& dir) {
  const fs::path out = dir / "cmd.stdout", err = dir / "cmd.stderr";
  const int status = std::system((command + " >" + quote(out) + " 2>" + quote(err)).c_str());
  RunResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
  fs::remove(out);
  fs::remove(err);
  return r;
}

// One thread: these models are tiny, and OpenMP threads that spin at barriers while other processes
// hold the cores make a run take minutes instead of a second.
RunResult liandan(const std::string& args, const fs::path& dir) {
  return run(std::string("OMP_NUM_THREADS=1 ") + LIANDAN_BINARY + " " + args, dir);
}

bool have_tool(const char* name) { return std::system((std::string("command -v ") + name + " >/dev/null 2>&1").c_str()) == 0; }

// The fortunes (Debian's `fortunes` package) as single lines: one fortune each, newlines as spaces.
std::vector<std::string> fortunes(size_t count) {
  std::istringstream in(read_file(kFortunes));
  std::vector<std::string> out;
  std::string line, current;
  while (std::getline(in, line) && out.size() < count) {
    if (line == "%") {
      if (!current.empty()) out.push_back(current);
      current.clear();
    } else if (!line.empty()) {
      current += (current.empty() ? "" : " ") + line;
    }
  }
  return out;
}

// stories260K as a Hugging Face folder with a trained 512-piece SentencePiece tokenizer, made once
// per test process.
struct Stories {
  fs::path root, dir, spm_model;
  std::string skip;     // why the tests using it are skipped (a missing tool or file)
  std::string failure;  // why making it failed
  ~Stories() {
    std::error_code ec;
    if (!root.empty() && !::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(root, ec);
  }
};

const Stories& stories() {
  static Stories s = [] {
    Stories st;
    if (!fs::exists(kStoriesBin)) st.skip = "missing " + kStoriesBin.string();
    if (!fs::exists(kFortunes)) st.skip = "missing the fortunes corpus: apt-get install fortunes";
    if (!have_tool("spm_train") || !have_tool("spm_encode")) st.skip = "spm_train missing: apt-get install sentencepiece";
    if (!st.skip.empty()) return st;
    std::string pattern = (fs::temp_directory_path() / "liandan_lm_eval_XXXXXX").string();
    LD_CHECK(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    st.root = pattern;
    st.dir = st.root / "stories";
    RunResult c = liandan("convert --from llama2c " + quote(kStoriesBin) + " --to hf " + quote(st.dir), st.root);
    if (c.rc != 0) st.failure = "convert failed: " + c.err;
    std::string text;
    for (const std::string& f : fortunes(800)) text += f + "\n";
    write_file(st.root / "train.txt", text);
    RunResult t = run("spm_train --input=" + quote(st.root / "train.txt") + " --model_prefix=" + quote(st.root / "tok") +
                          " --model_type=bpe --vocab_size=512 --byte_fallback=true --character_coverage=1.0"
                          " --hard_vocab_limit=false",
                      st.root);
    if (t.rc != 0) st.failure += "spm_train failed: " + t.err;
    st.spm_model = st.root / "tok.model";
    if (st.failure.empty()) fs::copy_file(st.spm_model, st.dir / "tokenizer.model");
    return st;
  }();
  return s;
}

#define REQUIRE_STORIES()                                  \
  const Stories& S = stories();                            \
  if (!S.skip.empty()) GTEST_SKIP() << S.skip;             \
  ASSERT_TRUE(S.failure.empty()) << S.failure

double rel_diff(double a, double b) { return std::abs(a - b) / std::max(std::abs(b), 1e-300); }

TEST(LmEvalPpl, Stories260KEqualsFloat64ReferenceInWindows) {
  REQUIRE_STORIES();
  test::TempDir dir("lm_eval_ppl");
  // One long document (several windows), two short ones; one line each so spm_encode sees them whole.
  std::vector<std::string> docs = {"", fortunes(420).at(410), "Hello."};
  for (const std::string& f : fortunes(400)) {
    if (docs[0].size() > 2000) break;
    docs[0] += (docs[0].empty() ? "" : " ") + f;
  }
  std::string jsonl, lines;
  for (const std::string& d : docs) {
    jsonl += json{{"text", d}}.dump() + "\n";
    lines += d + "\n";
  }
  write_file(dir / "docs.jsonl", jsonl);
  write_file(dir / "docs.txt", lines);
  // The ids, independently: spm_encode, with BOS (1) in front as the tokenizer adds it.
  RunResult enc = run("spm_encode --model=" + quote(S.spm_model) + " --output_format=id < " + quote(dir / "docs.txt"),
                      dir.path());
  ASSERT_EQ(enc.rc, 0) << enc.err;
  std::istringstream enc_lines(enc.out);
  std::string ids_file, line;
  while (std::getline(enc_lines, line)) ids_file += "1 " + line + "\n";
  write_file(dir / "ids.txt", ids_file);
  const fs::path script = fs::path(LIANDAN_SOURCE_DIR) / "tests/eval/lm_eval_ref.py";
  RunResult ref = run(std::string(LIANDAN_PYTHON) + " " + quote(script) + " " + quote(kStoriesBin) + " " +
                          quote(dir / "ids.txt") + " 512 96",
                      dir.path());
  if (ref.rc == 3) GTEST_SKIP() << ref.err;
  ASSERT_EQ(ref.rc, 0) << ref.err;
  std::istringstream ref_out(ref.out);

  for (const auto& [window, batch] : {std::pair<int, int>{512, 8}, {96, 3}}) {
    SCOPED_TRACE("window " + std::to_string(window));
    int64_t ref_tokens = 0;
    double ref_nll = 0;
    ref_out >> ref_tokens >> ref_nll;
    ASSERT_GT(ref_tokens, 0);

    const std::string max_length = window == 512 ? "" : " --max-length " + std::to_string(window);
    RunResult r = liandan("eval --model " + quote(S.dir) + " --task ppl --data " + quote(dir / "docs.jsonl") +
                              " --batch-size " + std::to_string(batch) + max_length + " --output " + quote(dir / "r.json"),
                          dir.path());
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.out.find("ppl"), std::string::npos) << r.out;
    const json report = json::parse(read_file(dir / "r.json"));
    const json& m = report["metrics"];
    EXPECT_EQ(m["tokens"].get<int64_t>(), ref_tokens);
    EXPECT_EQ(report["window"].get<int64_t>(), window);
    EXPECT_LT(rel_diff(m["nll"].get<double>(), ref_nll), 1e-4) << m["nll"] << " vs " << ref_nll;
    EXPECT_LT(rel_diff(m["ppl"].get<double>(), std::exp(ref_nll / double(ref_tokens))), 1e-4);
  }
  // Several windows were scored: a document of n tokens in w windows predicts n - w tokens.
  std::istringstream first(ids_file);
  std::getline(first, line);
  EXPECT_GT(std::count(line.begin(), line.end(), ' ') + 1, 512) << "the long document should span two windows";
}

// log p(continuation | context) from one unbatched forward of the whole sequence and log_softmax.
double full_forward_loglik(const models::CausalLM& model, std::vector<int64_t> seq, size_t continuation,
                           bool& greedy) {
  const int64_t L = int64_t(seq.size());
  Tensor logits = model.forward(from_vector(seq, {1, L}));
  const std::vector<float> lp = ops::log_softmax(logits, -1).contiguous().to_vector<float>();
  const int64_t V = logits.size(2);
  double sum = 0;
  greedy = true;
  for (int64_t p = L - int64_t(continuation); p < L; ++p) {
    const float* row = lp.data() + (p - 1) * V;
    sum += row[seq[size_t(p)]];
    greedy = greedy && std::max_element(row, row + V) - row == seq[size_t(p)];
  }
  return sum;
}

TEST(LmEvalLoglik, BatchedPaddedEqualsFullForwardLogSoftmax) {
  REQUIRE_STORIES();
  auto model = models::load_causal_lm(S.dir);
  std::vector<LoglikRequest> requests;
  for (int r = 0; r < 7; ++r) {
    LoglikRequest q;
    q.context.push_back(1);
    for (int i = 0; i < 3 + 5 * r; ++i) q.context.push_back((r * 131 + i * 37) % 509 + 3);
    for (int i = 0; i < 1 + (r * 3) % 7; ++i) q.continuation.push_back((r * 71 + i * 53) % 509 + 3);
    requests.push_back(q);
  }
  // A context longer than the window: cut on the left.
  const int64_t window = 16;
  const std::vector<LoglikResult> full = loglikelihood(*model, requests, {.batch_size = 3, .max_length = 0});
  const std::vector<LoglikResult> cut = loglikelihood(*model, requests, {.batch_size = 2, .max_length = window});
  for (size_t r = 0; r < requests.size(); ++r) {
    SCOPED_TRACE("request " + std::to_string(r));
    std::vector<int64_t> seq = requests[r].context;
    seq.insert(seq.end(), requests[r].continuation.begin(), requests[r].continuation.end());
    const size_t n = requests[r].continuation.size();
    bool greedy = false;
    const double ref = full_forward_loglik(*model, seq, n, greedy);
    EXPECT_NEAR(full[r].logprob, ref, 1e-4 * std::max(1.0, std::abs(ref)));
    EXPECT_EQ(full[r].tokens, int64_t(n));
    EXPECT_EQ(full[r].greedy, greedy);
    EXPECT_LT(full[r].logprob, 0.0);
    // The model reads the last `window` tokens before the final one.
    if (seq.size() > size_t(window) + 1) seq.erase(seq.begin(), seq.end() - (window + 1));
    const double ref_cut = full_forward_loglik(*model, seq, n, greedy);
    EXPECT_NEAR(cut[r].logprob, ref_cut, 1e-4 * std::max(1.0, std::abs(ref_cut)));
  }
  EXPECT_NE(cut[6].logprob, full[6].logprob) << "the longest request should have been cut";
}

TEST(LmEvalLoglik, HarnessSplitMovesTrailingWhitespaceToTheContinuation) {
  REQUIRE_STORIES();
  auto tok = tok::load_tokenizer(S.dir);
  const std::vector<int64_t> prefix = special_prefix(*tok);
  EXPECT_EQ(prefix, std::vector<int64_t>{1});
  auto ids = [&](const std::string& text) {
    std::vector<int64_t> out = prefix;
    for (int32_t id : tok->encode(text)) out.push_back(id);
    return out;
  };
  const LoglikRequest r = encode_request(*tok, prefix, "Once upon a time  ", "there was", 1);
  const std::vector<int64_t> context = ids("Once upon a time"), whole = ids("Once upon a time  there was");
  EXPECT_EQ(r.context, context);
  EXPECT_EQ(r.continuation, std::vector<int64_t>(whole.begin() + long(context.size()), whole.end()));
  // Any trailing whitespace, as Python's rstrip() sees it.
  EXPECT_EQ(encode_request(*tok, prefix, "Question: why?\n", "Because", 1).context, ids("Question: why?"));
  // An empty context is BOS.
  EXPECT_EQ(encode_request(*tok, {}, "", "Hello", 1).context, std::vector<int64_t>{1});
}

TEST(LmEvalChoice, AccAndAccNormDisagreeWhenLengthsMatter) {
  REQUIRE_STORIES();
  test::TempDir dir("lm_eval_acc_norm");
  auto model = models::load_causal_lm(S.dir);
  auto tok = tok::load_tokenizer(S.dir);
  // A one-letter choice against a long repetitive one: the long one has the lower total
  // log-likelihood but the higher one per byte. Gold is the long one.
  const std::string query = "The dog said woof woof woof woof woof woof";
  const std::vector<std::string> choices = {"q", "woof woof woof woof woof woof woof woof woof woof woof"};
  const std::vector<ChoiceItem> items = {{query, choices, 1}, {"A day for firm", {"decisions", "x"}, 0}};
  std::vector<std::vector<double>> expected;
  for (const ChoiceItem& item : items) {
    expected.emplace_back();
    for (const std::string& c : item.choices)
      expected.back().push_back(loglikelihood(*model, {encode_request(*tok, {1}, item.query, " " + c, 1)})[0].logprob);
  }
  ASSERT_GT(expected[0][0], expected[0][1]) << "crafted: the short choice must have the higher log-likelihood";
  ASSERT_LT(expected[0][0] / 1.0, expected[0][1] / double(choices[1].size())) << "and the lower per byte";

  std::string jsonl;
  for (const ChoiceItem& item : items) jsonl += json{{"query", item.query}, {"choices", item.choices}, {"gold", item.gold}}.dump() + "\n";
  write_file(dir / "choice.jsonl", jsonl);
  RunResult r = liandan("eval --model " + quote(S.dir) + " --task choice --data " + quote(dir / "choice.jsonl") +
                            " --batch-size 3 --output " + quote(dir / "r.json"),
                        dir.path());
  ASSERT_EQ(r.rc, 0) << r.err;
  const json report = json::parse(read_file(dir / "r.json"));
  for (size_t i = 0; i < items.size(); ++i) {
    const json& sample = report["samples"][i];
    for (size_t c = 0; c < items[i].choices.size(); ++c)
      EXPECT_NEAR(sample["logliks"][c].get<double>(), expected[i][c], 1e-6 * std::abs(expected[i][c]));
    // acc_norm divides by the bytes of the choice (without the " " it is scored with).
    std::vector<double> norm;
    for (size_t c = 0; c < items[i].choices.size(); ++c) norm.push_back(expected[i][c] / double(items[i].choices[c].size()));
    EXPECT_EQ(sample["pred"].get<int64_t>(), std::max_element(expected[i].begin(), expected[i].end()) - expected[i].begin());
    EXPECT_EQ(sample["pred_norm"].get<int64_t>(), std::max_element(norm.begin(), norm.end()) - norm.begin());
  }
  EXPECT_EQ(report["samples"][0]["pred"].get<int64_t>(), 0);
  EXPECT_EQ(report["samples"][0]["pred_norm"].get<int64_t>(), 1);
  const double acc = report["metrics"]["acc"].get<double>(), acc_norm = report["metrics"]["acc_norm"].get<double>();
  EXPECT_NE(acc, acc_norm);
  double correct = 0, correct_norm = 0;
  for (const json& sample : report["samples"]) {
    correct += sample["pred"] == sample["gold"];
    correct_norm += sample["pred_norm"] == sample["gold"];
  }
  EXPECT_DOUBLE_EQ(acc, correct / 2);
  EXPECT_DOUBLE_EQ(acc_norm, correct_norm / 2);
}

// --- a tiny LLaMA fine-tuned on sums

std::string sum_example(int a, int b) { return std::to_string(a) + "+" + std::to_string(b) + "= " + std::to_string(a + b); }

// Trains on few-shot-formatted text: three random examples joined by blank lines, loss on every token.
void fine_tune(models::CausalLM& model, int steps) {
  const int threads = num_threads();
  set_num_threads(1);  // see liandan() above
  std::vector<Tensor> params = model.parameters();
  train::AdamW adamw({{params, 0.0f}}, {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.0f});
  uint64_t state = 42;
  auto next = [&] { return int((state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33); };
  const int64_t B = 16;
  for (int step = 0; step < steps; ++step) {
    std::vector<int64_t> inputs, targets;
    int64_t T = 0;
    for (int64_t b = 0; b < B; ++b) {
      std::string text;
      for (int k = 0; k < 3; ++k) text += (k ? "\n\n" : "") + sum_example(next() % 5, next() % 5);
      T = int64_t(text.size()) - 1;
      for (int64_t t = 0; t < T; ++t) {
        inputs.push_back(static_cast<unsigned char>(text[size_t(t)]));
        targets.push_back(static_cast<unsigned char>(text[size_t(t) + 1]));
      }
    }
    Tensor logits = model.forward(from_vector(inputs, {B, T}));
    Tensor loss = ops::cross_entropy(logits.reshape({B * T, logits.size(2)}), from_vector(targets, {B * T}));
    adamw.zero_grad();
    loss.backward();
    adamw.step();
  }
  set_num_threads(threads);
}

TEST(LmEvalChoice, FewShotFineTunedBeatsUntrainedAndClassifyAgrees) {
  test::TempDir dir("lm_eval_fewshot");
  // A byte-level tokenizer without merges: token i is byte i.
  tok::ByteLevelBpeData vocab;
  for (const std::string& b : tok::byte_to_unicode()) vocab.vocab.push_back(b);
  tok::save_tokenizer_json(vocab, dir / "tok");
  models::StackConfig stack{.kind = models::StackKind::llama, .n_layer = 2, .n_head = 4, .n_kv_head = 4, .n_embd = 64,
                            .vocab_size = 256, .n_positions = 64, .intermediate_size = 128};
  const io::HfModelConfig config = io::make_hf_config(stack, /*tie_word_embeddings=*/false);
  Generator gen(11);
  auto untrained = models::make_causal_lm(config, gen);
  models::save_pretrained(*untrained, config, dir / "untrained", false, dir / "tok");
  auto tuned = models::make_causal_lm(config, gen);
  fine_tune(*tuned, 200);
  models::save_pretrained(*tuned, config, dir / "tuned", false, dir / "tok");

  std::string choice, classify;
  const std::vector<std::string> digits = {"0", "1", "2", "3", "4", "5", "6", "7", "8"};
  for (int a = 0; a < 5; ++a)
    for (int b = 0; b < 5; ++b) {
      const std::string query = std::to_string(a) + "+" + std::to_string(b) + "=";
      choice += json{{"query", query}, {"choices", digits}, {"gold", a + b}}.dump() + "\n";
      classify += json{{"text", query}, {"label", std::to_string(a + b)}}.dump() + "\n";
    }
  write_file(dir / "choice.jsonl", choice);
  write_file(dir / "classify.jsonl", classify);
  auto eval = [&](const char* model, const std::string& task) {
    const std::string data = task == "choice" ? "choice.jsonl" : "classify.jsonl --prompt-template '{text}'";
    RunResult r = liandan("eval --model " + quote(dir / model) + " --task " + task + " --shots 2 --seed 5 --data " +
                              quote(dir.path()) + "/" + data + " --output " + quote(dir / "r.json"),
                          dir.path());
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(read_file(dir / "r.json"));
  };
  const double acc_untrained = eval("untrained", "choice")["metrics"]["acc"].get<double>();
  const double acc_tuned = eval("tuned", "choice")["metrics"]["acc"].get<double>();
  EXPECT_GE(acc_tuned, 0.8);
  EXPECT_GE(acc_tuned - acc_untrained, 0.4) << "tuned " << acc_tuned << ", untrained " << acc_untrained;

  // classify on a causal LM is choice over the sorted label set: same contexts, same answers.
  const json c = eval("tuned", "classify");
  EXPECT_DOUBLE_EQ(c["metrics"]["accuracy"].get<double>(), acc_tuned);
  std::vector<std::string> refs, preds;
  for (const json& s : c["samples"]) {
    refs.push_back(s["label"]);
    preds.push_back(s["pred"]);
  }
  const ClassificationReport expected = classification_report(confusion_matrix(refs, preds, digits));
  EXPECT_EQ(c["metrics"]["confusion_matrix"].get<std::vector<std::vector<int64_t>>>(), expected.matrix.counts);
  EXPECT_DOUBLE_EQ(c["metrics"]["macro"]["f1"].get<double>(), expected.macro.f1);
  EXPECT_DOUBLE_EQ(c["metrics"]["weighted"]["f1"].get<double>(), expected.weighted.f1);
  EXPECT_DOUBLE_EQ(c["metrics"]["micro"]["f1"].get<double>(), expected.micro.f1);
}

TEST(LmEvalGenerate, ScoresEqualTheMetricsLibraryOnGreedyOutputs) {
  REQUIRE_STORIES();
  test::TempDir dir("lm_eval_generate");
  auto model = models::load_causal_lm(S.dir);
  auto tok = tok::load_tokenizer(S.dir);
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "A day for firm"};
  // The hypotheses, one prompt at a time: greedy, EOS dropped, decoded, trimmed.
  std::vector<std::string> hyps;
  for (const std::string& p : prompts) {
    std::vector<int64_t> ids = {1};
    for (int32_t id : tok->encode(p)) ids.push_back(id);
    infer::GenerateOptions o;
    o.max_new_tokens = 12;
    o.sampling.temperature = 0;
    o.eos_ids = {2};
    std::vector<int32_t> out = infer::generate(*model, ids, o);
    if (!out.empty() && out.back() == 2) out.pop_back();
    std::string text = tok->decode(out, true);
    const size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
    hyps.push_back(b == std::string::npos ? "" : text.substr(b, e - b + 1));
  }
  ASSERT_FALSE(hyps[0].empty());
  // Item 0's reference is its hypothesis, item 1's second reference is its hypothesis with a word
  // fewer, item 2's an unrelated text: exact match 1/3.
  const std::string shorter = hyps[1].substr(0, hyps[1].rfind(' '));
  const std::vector<std::vector<std::string>> refs = {
      {hyps[0]}, {"the cat sat on the mat", shorter}, {"Nothing here matches it at all."}};
  std::string jsonl = json{{"prompt", prompts[0]}, {"reference", refs[0][0]}}.dump() + "\n";
  jsonl += json{{"prompt", prompts[1]}, {"references", refs[1]}}.dump() + "\n";
  jsonl += json{{"prompt", prompts[2]}, {"references", refs[2]}}.dump() + "\n";
  write_file(dir / "gen.jsonl", jsonl);
  RunResult r = liandan("eval --model " + quote(S.dir) + " --task generate --max-new-tokens 12 --batch-size 2 --data " +
                            quote(dir / "gen.jsonl") + " --output " + quote(dir / "r.json"),
                        dir.path());
  ASSERT_EQ(r.rc, 0) << r.err;
  const json report = json::parse(read_file(dir / "r.json"));
  for (size_t i = 0; i < hyps.size(); ++i) EXPECT_EQ(report["samples"][i]["hypothesis"].get<std::string>(), hyps[i]);
  const json& m = report["metrics"];
  EXPECT_DOUBLE_EQ(m["exact_match"].get<double>(), 1.0 / 3.0);
  const BleuScore bleu = corpus_bleu(hyps, {{refs[0][0], refs[1][0], refs[2][0]}, {"", refs[1][1], ""}});
  EXPECT_DOUBLE_EQ(m["bleu"].get<double>(), bleu.score);
  EXPECT_EQ(m["bleu_signature"].get<std::string>(), bleu.signature);
  // ROUGE: per item the best F-measure over its references, averaged.
  double r1 = 0, rl = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    double best1 = 0, bestl = 0;
    for (const std::string& ref : refs[i]) {
      best1 = std::max(best1, rouge_n(ref, hyps[i], 1).fmeasure);
      bestl = std::max(bestl, rouge_l(ref, hyps[i]).fmeasure);
    }
    r1 += best1 / 3;
    rl += bestl / 3;
  }
  EXPECT_NEAR(m["rouge1"]["fmeasure"].get<double>(), r1, 1e-12);
  EXPECT_NEAR(m["rougeL"]["fmeasure"].get<double>(), rl, 1e-12);
  EXPECT_GE(m["rouge1"]["fmeasure"].get<double>(), 1.0 / 3.0);  // item 0 scores 1
}

// --- bad input through the CLI: one line on stderr, non-zero exit

class LmEvalCli : public ::testing::Test {
 protected:
  test::TempDir dir{"lm_eval_cli"};
  RunResult eval(const std::string& args) { return liandan("eval --model " + quote(dir / "no_model") + " " + args, dir.path()); }
  void expect_error(const RunResult& r, std::initializer_list<const char*> parts) {
    EXPECT_NE(r.rc, 0);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    test::expect_mentions(r.err, parts);
  }
};

TEST_F(LmEvalCli, BadInputIsOneClearError) {
  const std::string good = R"({"query": "2+2=", "choices": ["4", "5"], "gold": 0})";
  write_file(dir / "malformed.jsonl", good + "\n\n{\"query\": \"x\", \"choices\": [\"a\"], \n");
  expect_error(eval("--task choice --data " + quote(dir / "malformed.jsonl")), {"malformed.jsonl:3", "not valid JSON"});

  write_file(dir / "missing.jsonl", good + "\n" + R"({"query": "2+2=", "gold": 0})" + "\n");
  expect_error(eval("--task choice --data " + quote(dir / "missing.jsonl")), {"missing.jsonl:2", "missing field \"choices\""});

  write_file(dir / "gold.jsonl", R"({"context": "2+2=", "choices": ["4", "5"], "gold": 2})" "\n");
  expect_error(eval("--task choice --data " + quote(dir / "gold.jsonl")), {"gold.jsonl:1", "gold index 2 is out of range"});

  write_file(dir / "empty.jsonl", "");
  expect_error(eval("--task choice --data " + quote(dir / "empty.jsonl")), {"empty.jsonl", "no items"});
  write_file(dir / "empty.txt", "\n");
  expect_error(eval("--task ppl --data " + quote(dir / "empty.txt")), {"empty.txt", "empty"});

  write_file(dir / "gen.jsonl", R"({"prompt": "Hi"})" "\n");
  expect_error(eval("--task generate --data " + quote(dir / "gen.jsonl")), {"gen.jsonl:1", "missing field \"reference\""});
  write_file(dir / "cls.jsonl", R"({"text": "Hi", "label": null})" "\n");
  expect_error(eval("--task classify --data " + quote(dir / "cls.jsonl")), {"cls.jsonl:1", "\"label\""});

  expect_error(eval("--task summarize --data " + quote(dir / "gold.jsonl")), {"--task 'summarize' is unknown", "ppl, choice"});
  write_file(dir / "one.jsonl", good + "\n");
  expect_error(eval("--task choice --shots 1 --data " + quote(dir / "one.jsonl")), {"--shots 1", "only 0 few-shot examples"});
  // Good data, no model folder: the error names it.
  expect_error(eval("--task choice --data " + quote(dir / "one.jsonl")), {"no_model"});
}

}  // namespace
}  // namespace ld::eval
