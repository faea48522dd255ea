// llama2.c import: stories260K (a real pretrained model) converted by the liandan binary, loaded back
// from the Hugging Face folder and run by the stack, against an independent float64 numpy
// implementation of llama2.c's own forward pass (interleaved-pair RoPE, no HF permutation), which
// reads the .bin itself. Plus a random untied checkpoint, `liandan info`, and the bad-input errors.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "io/llama2c.hpp"
#include "io/safetensors.hpp"
#include "models/tiny_transformer.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld::io {
namespace {

namespace fs = std::filesystem;

const fs::path kStories = fs::path(LIANDAN_SHARED_DIR) / "models/stories260K/stories260K.bin";

// The reference: llama2.c's forward pass in float64, written from the format description only.
const char* kReference = R"PY(
import struct, sys
try:
    import numpy as np
except ImportError:
    sys.stderr.write("numpy is missing for /usr/bin/python3: install python3-numpy\n")
    sys.exit(3)

def load(path):
    data = open(path, "rb").read()
    dim, hidden, L, H, KVH, vocab, seq = struct.unpack("<7i", data[:28])
    shared, V = vocab > 0, abs(vocab)
    f = np.frombuffer(data, dtype="<f4", offset=28).astype(np.float64)
    hs = dim // H
    kvd = KVH * hs
    pos = [0]
    def take(*shape):
        n = int(np.prod(shape))
        a = f[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return a
    w = dict(emb=take(V, dim), rms_att=take(L, dim), wq=take(L, dim, dim), wk=take(L, kvd, dim),
             wv=take(L, kvd, dim), wo=take(L, dim, dim), rms_ffn=take(L, dim), w1=take(L, hidden, dim),
             w2=take(L, dim, hidden), w3=take(L, hidden, dim), rms_final=take(dim))
    pos[0] += seq * hs  # freq_cis_real, freq_cis_imag: seq*hs/2 each
    w["wcls"] = w["emb"] if shared else take(V, dim)
    assert pos[0] == f.size, (pos[0], f.size)
    return dict(dim=dim, L=L, H=H, KVH=KVH, hs=hs), w

def rmsnorm(x, g):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * g

def rope(x):  # [T, heads, hs]: rotate (x[2i], x[2i+1]) by pos * 10000^(-2i/hs)
    T, _, hs = x.shape
    freq = 10000.0 ** (-(2.0 * np.arange(hs // 2)) / hs)
    ang = np.arange(T)[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out

def forward(cfg, w, ids):
    T, H, KVH, hs = len(ids), cfg["H"], cfg["KVH"], cfg["hs"]
    x = w["emb"][ids]
    masked = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(cfg["L"]):
        h = rmsnorm(x, w["rms_att"][l])
        q = rope((h @ w["wq"][l].T).reshape(T, H, hs))
        k = rope((h @ w["wk"][l].T).reshape(T, KVH, hs))
        v = (h @ w["wv"][l].T).reshape(T, KVH, hs)
        att = np.zeros((T, H, hs))
        for hh in range(H):
            kv = hh // (H // KVH)
            sc = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hs)
            sc[masked] = -np.inf
            sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
            att[:, hh, :] = (sc / sc.sum(axis=-1, keepdims=True)) @ v[:, kv, :]
        x = x + att.reshape(T, -1) @ w["wo"][l].T
        h = rmsnorm(x, w["rms_ffn"][l])
        a, b = h @ w["w1"][l].T, h @ w["w3"][l].T
        x = x + ((a / (1.0 + np.exp(-a))) * b) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T

def make_untied(path):  # a random checkpoint with a separate classifier (negative vocab_size)
    rng = np.random.default_rng(7)
    dim, hidden, L, H, KVH, V, seq = 48, 80, 2, 6, 2, 100, 64
    hs = dim // H
    sizes = [V * dim, L * dim, L * dim * dim, 2 * L * KVH * hs * dim, L * dim * dim, L * dim,
             3 * L * hidden * dim, dim, seq * hs, V * dim]
    with open(path, "wb") as out:
        out.write(struct.pack("<7i", dim, hidden, L, H, KVH, -V, seq))
        for n in sizes:
            out.write(rng.normal(0.0, 0.3, n).astype("<f4").tobytes())

mode = sys.argv[1]
if mode == "make_untied":
    make_untied(sys.argv[2])
else:  # ref BIN "ids" LOGITS_OUT N_GREEDY GREEDY_OUT
    cfg, w = load(sys.argv[2])
    ids = [int(t) for t in sys.argv[3].split()]
    forward(cfg, w, ids).astype("<f8").tofile(sys.argv[4])
    seq = [1]
    for _ in range(int(sys.argv[5])):
        seq.append(int(np.argmax(forward(cfg, w, seq)[-1])))
    open(sys.argv[6], "w").write(" ".join(map(str, seq[1:])) + "\n")
)PY";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string quote(const fs::path& p) {
  std::string q = "'";
  q += p.string();
  q += '\'';
  return q;
}

struct RunResult {
  int rc;
  std::string out, err;
};

// Runs a shell command line, capturing stdout and stderr through files in `dir`.
RunResult run(const std::string& command, const fs::path& dir) {
  const fs::path out = dir / "cmd.stdout", err = dir / "cmd.stderr";
  int status = std::system((command + " >" + quote(out) + " 2>" + quote(err)).c_str());
  RunResult r{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out), read_text(err)};
  fs::remove(out);
  fs::remove(err);
  return r;
}

RunResult liandan(const std::string& args, const fs::path& dir) { return run(std::string(LIANDAN_BINARY) + " " + args, dir); }

void python(const std::string& args, const fs::path& dir) {
  const fs::path script = dir / "llama2c_reference.py";
  std::ofstream(script) << kReference;
  RunResult r = run(std::string(LIANDAN_PYTHON) + " " + quote(script) + " " + args, dir);
  ASSERT_EQ(r.rc, 0) << "the Python reference failed (it needs Debian's python3-numpy: apt-get install "
                        "python3-numpy):\n"
                     << r.err;
}

std::vector<double> read_f64(const fs::path& p) {
  std::string bytes = read_text(p);
  std::vector<double> v(bytes.size() / sizeof(double));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
  return v;
}

std::string ids_str(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

struct LoadedModel {
  HfModelConfig config;
  models::Params params;
};

// What a user of the folder does: config.json, the checkpoint, the tied head.
LoadedModel load_folder(const fs::path& dir) {
  LoadedModel m{read_hf_config(dir), load_checkpoint(dir)};
  tie_lm_head(m.params, m.config);
  return m;
}

// logits [T, V] of one sequence
std::vector<float> logits_of(const LoadedModel& m, const std::vector<int64_t>& ids) {
  Tensor x = from_vector<int64_t>(ids, {1, int64_t(ids.size())});
  return models::forward_logits(m.config.stack, m.params, x).to_vector<float>();
}

// Per position: max |a - b| / max |b|; returns the worst position's value.
double worst_relative_error(const std::vector<float>& got, const std::vector<double>& want, int64_t vocab) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t row = 0; row * size_t(vocab) < std::min(got.size(), want.size()); ++row) {
    double diff = 0, scale = 0;
    for (size_t j = row * size_t(vocab); j < (row + 1) * size_t(vocab); ++j) {
      diff = std::max(diff, std::abs(double(got[j]) - want[j]));
      scale = std::max(scale, std::abs(want[j]));
    }
    worst = std::max(worst, diff / scale);
  }
  return worst;
}

const std::vector<int64_t> kPrompt = {1,   312, 45,  7,   401, 88,  256, 13, 499, 64,  3,
                                      200, 17,  350, 91,  128, 502, 33,  77, 260, 411};

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(fs::exists(kStories)) << kStories << " is missing";
    tmp_ = new test::TempDir();
    RunResult r = liandan("convert --from llama2c " + quote(kStories) + " --to hf " + quote(dir()), tmp_->path());
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  static fs::path dir() { return tmp_->path() / "stories260K"; }
  static test::TempDir* tmp_;
};
test::TempDir* Stories260K::tmp_ = nullptr;

TEST_F(Stories260K, FolderIsAHuggingFaceLlamaWithTiedEmbeddings) {
  HfModelConfig c = read_hf_config(dir());
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.stack.n_embd, 64);
  EXPECT_EQ(c.stack.intermediate_size, 172);
  EXPECT_EQ(c.stack.n_layer, 5);
  EXPECT_EQ(c.stack.n_head, 8);
  EXPECT_EQ(c.stack.n_kv_head, 4);
  EXPECT_EQ(c.stack.vocab_size, 512);
  EXPECT_EQ(c.stack.n_positions, 512);
  EXPECT_DOUBLE_EQ(c.stack.norm_eps, 1e-5);
  auto tensors = load_checkpoint(dir());
  EXPECT_EQ(tensors.count("lm_head.weight"), 0u) << "a tied head is omitted from the file, as HF does";
  EXPECT_EQ(tensors.size(), size_t(2 + 5 * 9));
  EXPECT_EQ(tensors.at("model.layers.4.mlp.down_proj.weight").shape(), (Shape{64, 172}));
  EXPECT_EQ(tensors.at("model.layers.0.self_attn.k_proj.weight").shape(), (Shape{32, 64}));
  EXPECT_TRUE(fs::exists(dir() / "generation_config.json"));
  // nothing left next to it
  for (const auto& e : fs::directory_iterator(dir().parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".stories260K"), std::string::npos) << e.path();
}

TEST_F(Stories260K, LogitsAndGreedyTokensMatchFloat64Llama2c) {
  const int n_greedy = 40;
  python("ref " + quote(kStories) + " '" + ids_str(kPrompt) + "' " + quote(tmp_->path() / "ref_logits.f64") + " " +
             std::to_string(n_greedy) + " " + quote(tmp_->path() / "ref_greedy.txt"),
         tmp_->path());
  if (HasFatalFailure()) return;
  LoadedModel m = load_folder(dir());

  const std::vector<double> want = read_f64(tmp_->path() / "ref_logits.f64");
  ASSERT_EQ(want.size(), kPrompt.size() * 512);
  const double err = worst_relative_error(logits_of(m, kPrompt), want, 512);
  std::printf("stories260K: %zu positions, worst max|a-b|/max|b| = %.3g\n", kPrompt.size(), err);
  EXPECT_LT(err, 1e-4);

  std::vector<int64_t> seq = {1};
  for (int step = 0; step < n_greedy; ++step) {
    std::vector<float> logits = logits_of(m, seq);
    auto last = logits.end() - 512;
    seq.push_back(std::max_element(last, logits.end()) - last);
  }
  const std::string got = ids_str(std::vector<int64_t>(seq.begin() + 1, seq.end()));
  std::string want_greedy = read_text(tmp_->path() / "ref_greedy.txt");
  want_greedy.erase(want_greedy.find_last_not_of('\n') + 1);
  EXPECT_EQ(got, want_greedy);
  std::printf("greedy from BOS: %s\n", got.c_str());
}

TEST_F(Stories260K, InfoPrintsTheParameterCountOfTheTensors) {
  int64_t total = 0;
  for (const auto& [name, t] : load_checkpoint(dir())) total += t.numel();
  EXPECT_EQ(total, 260032);  // README: embedding 32768 + 5 layers x 45440 + final norm 64
  RunResult r = liandan("info --model " + quote(dir()), tmp_->path());
  ASSERT_EQ(r.rc, 0) << r.err;
  test::expect_mentions(r.out, {"LlamaForCausalLM", "f32"});
  EXPECT_NE(r.out.find("parameters    " + std::to_string(total) + "\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(" + std::to_string(4 * total) + " bytes)"), std::string::npos) << r.out;  // f32
  EXPECT_NE(r.out.find("(" + std::to_string(2 * total) + " bytes)"), std::string::npos) << r.out;  // bf16
}

TEST(Llama2c, UntiedRandomCheckpointMatchesFloat64Reference) {
  test::TempDir tmp;
  const fs::path bin = tmp.path() / "untied.bin", out = tmp.path() / "untied";
  python("make_untied " + quote(bin), tmp.path());
  if (HasFatalFailure()) return;
  const std::vector<int64_t> prompt = {1, 5, 99, 42, 7, 63, 0, 2, 18, 77, 31, 50};
  python("ref " + quote(bin) + " '" + ids_str(prompt) + "' " + quote(tmp.path() / "ref.f64") + " 3 " +
             quote(tmp.path() / "greedy.txt"),
         tmp.path());
  if (HasFatalFailure()) return;
  convert_llama2c_to_hf(bin, out, /*force=*/false);
  LoadedModel m = load_folder(out);
  EXPECT_FALSE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.config.stack.n_kv_head, 2);
  EXPECT_EQ(load_checkpoint(out).count("lm_head.weight"), 1u);
  const double err = worst_relative_error(logits_of(m, prompt), read_f64(tmp.path() / "ref.f64"), 100);
  std::printf("untied random: worst max|a-b|/max|b| = %.3g\n", err);
  EXPECT_LT(err, 1e-4);
}

TEST(Llama2c, PermuteRopeRowsMovesPairsToHalves) {
  // two heads of size 4: rows (0 1 2 3)(4 5 6 7) -> (0 2 1 3)(4 6 5 7)
  Tensor w = from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, {8, 1});
  EXPECT_EQ(permute_rope_rows(w, 2).to_vector<float>(), (std::vector<float>{0, 2, 1, 3, 4, 6, 5, 7}));
}

// --- bad input: one clear error, nothing written

void expect_nothing_written(const fs::path& dir, const std::vector<std::string>& allowed) {
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), name), allowed.end()) << "unexpected " << e.path();
  }
}

TEST(Llama2c, TruncatedFileIsAnErrorNamingIt) {
  test::TempDir tmp;
  const fs::path bin = tmp.path() / "cut.bin";
  std::string bytes = read_text(kStories);
  std::ofstream(bin, std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  RunResult r = liandan("convert --from llama2c " + quote(bin) + " --to hf " + quote(tmp.path() / "out"), tmp.path());
  EXPECT_NE(r.rc, 0);
  test::expect_mentions(r.err, {"liandan: error: ", "cut.bin", "truncated", std::to_string(bytes.size()).c_str()});
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  expect_nothing_written(tmp.path(), {"cut.bin"});
  std::ofstream(bin, std::ios::binary) << bytes.substr(0, 20);  // not even a header
  test::expect_mentions(test::error_message([&] { read_llama2c(bin); }), {"cut.bin", "truncated", "28-byte"});
}

TEST(Llama2c, HeadsNotDividingDimIsAnError) {
  test::TempDir tmp;
  const fs::path bin = tmp.path() / "bad_heads.bin";
  std::string bytes = read_text(kStories);
  const int32_t seven = 7;
  std::memcpy(bytes.data() + 12, &seven, 4);  // n_heads
  std::ofstream(bin, std::ios::binary) << bytes;
  RunResult r = liandan("convert --from llama2c " + quote(bin) + " --to hf " + quote(tmp.path() / "out"), tmp.path());
  EXPECT_NE(r.rc, 0);
  test::expect_mentions(r.err, {"liandan: error: ", "bad_heads.bin", "n_heads=7 does not divide dim=64"});
  expect_nothing_written(tmp.path(), {"bad_heads.bin"});
}

TEST(Llama2c, WrongClassifierSignIsExplained) {
  test::TempDir tmp;
  const fs::path bin = tmp.path() / "flipped.bin";
  std::string bytes = read_text(kStories);
  const int32_t minus = -512;
  std::memcpy(bytes.data() + 20, &minus, 4);  // claims a separate classifier that is not there
  std::ofstream(bin, std::ios::binary) << bytes;
  test::expect_mentions(test::error_message([&] { read_llama2c(bin); }),
                        {"flipped.bin", "truncated", "sign of vocab_size"});
}

TEST(Llama2c, ExistingOutputNeedsForce) {
  test::TempDir tmp;
  const fs::path out = tmp.path() / "out";
  fs::create_directory(out);
  std::ofstream(out / "keep.txt") << "mine";
  const std::string args = "convert --from llama2c " + quote(kStories) + " --to hf " + quote(out);
  RunResult r = liandan(args, tmp.path());
  EXPECT_NE(r.rc, 0);
  test::expect_mentions(r.err, {"liandan: error: ", "out", "already exists", "--force"});
  expect_nothing_written(tmp.path(), {"out"});
  expect_nothing_written(out, {"keep.txt"});

  r = liandan(args + " --force", tmp.path());
  ASSERT_EQ(r.rc, 0) << r.err;
  expect_nothing_written(tmp.path(), {"out"});
  expect_nothing_written(out, {"config.json", "generation_config.json", "model.safetensors"});
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
}

TEST(Llama2c, UnsupportedFormatsAreNamed) {
  test::TempDir tmp;
  RunResult r = liandan("convert --from gguf x.bin --to hf " + quote(tmp.path() / "o"), tmp.path());
  EXPECT_NE(r.rc, 0);
  test::expect_mentions(r.err, {"--from 'gguf'", "llama2c"});
}

// --- config.json

}  // namespace
}  // namespace ld::io
