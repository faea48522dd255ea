// Loading a damaged or inconsistent Hugging Face folder: models::load_causal_lm throws one ld::Error
// that names the file (and the tensor where there is one), and `liandan generate` prints exactly
// that error as one line "liandan: error: ..." on stderr and exits non-zero. And writing a folder
// (save_pretrained, `liandan convert`) never damages an existing one nor leaves a half-written one.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "models/causal_lm.hpp"
#include "test_util.hpp"

namespace ld::models {
namespace {

using test::max_abs_diff;

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keeps a safetensors header's order

#ifndef LIANDAN_BINARY
#error "load_errors_test needs LIANDAN_BINARY (the liandan executable)"
#endif

// Appended piece by piece: GCC 12 at -O3 warns falsely (-Wrestrict) on `"\"" + std::string`.
std::string quoted(const fs::path& p) {
  std::string s = "\"";
  s.append(p.string()).append("\"");
  return s;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Every file under `dir` (relative name -> bytes): a folder's complete state, to compare before/after.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    files[fs::relative(e.path(), dir).string()] = e.is_regular_file() ? read_file(e.path()) : "<dir>";
  return files;
}

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// --- a safetensors file taken apart and put back together, to damage its header

struct RawSafetensors {
  Json header;
  std::string data;  // the data section

  static RawSafetensors read(const fs::path& file) {
    const std::string bytes = read_file(file);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    return {Json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
  }
  void write(const fs::path& file) const {
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    const uint64_t n = text.size();
    write_file(file, std::string(reinterpret_cast<const char*>(&n), 8) + text + data);
  }
  // The tensor whose bytes come last in the file.
  std::string last_tensor() const {
    std::string name;
    uint64_t end = 0;
    for (const auto& [key, entry] : header.items())
      if (key != "__metadata__" && entry["data_offsets"][1].get<uint64_t>() >= end) {
        end = entry["data_offsets"][1].get<uint64_t>();
        name = key;
      }
    return name;
  }
};

// --- the liandan binary

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

CliRun run_liandan(const std::string& args, const fs::path& scratch) {
  const fs::path out = scratch / "cli.stdout", err = scratch / "cli.stderr";
  std::string cmd = quoted(LIANDAN_BINARY);
  cmd.append(" ").append(args).append(" >").append(quoted(out)).append(" 2>").append(quoted(err));
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

std::string generate_args(const fs::path& model) {
  return "generate --model " + quoted(model) + " --prompt-ids 1 --output ids --max-new-tokens 2 --temperature 0";
}

// A failed CLI run: non-zero exit, nothing on stdout, one line "liandan: error: ..." on stderr. Returns
// the message after the prefix.
std::string cli_error(const CliRun& r) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  const std::string prefix = "liandan: error: ";
  EXPECT_EQ(r.err.rfind(prefix, 0), 0u) << r.err;
  EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n' && r.err.find('\n') == r.err.size() - 1)
      << "not one line: " << r.err;
  return r.err.size() > prefix.size() ? r.err.substr(prefix.size(), r.err.size() - prefix.size() - 1) : "";
}

// A damaged file is reported as what it is, not as a disagreement between the weights and config.json.
void expect_blames_the_file(const std::string& msg) {
  EXPECT_EQ(msg.find("do not match config.json"), std::string::npos) << "misleading: " << msg;
}

class LoadErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    models::StackConfig s;
    s.kind = models::StackKind::llama;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_kv_head = 2;
    s.n_embd = 32;
    s.vocab_size = 50;
    s.intermediate_size = 48;
    s.n_positions = 64;
    s.norm_eps = 1e-5;
    s.rope_theta = 10000.0;
    config_ = io::make_hf_config(s, /*tie_word_embeddings=*/false);
    Generator gen(7);
    model_ = make_causal_lm(config_, gen);
    save_pretrained(*model_, config_, good());
    fs::create_directory(scratch());
  }

  fs::path good() const { return tmp_ / "good"; }
  // Where the CLI's stdout and stderr go, out of the folder listings the tests compare.
  fs::path scratch() const { return tmp_ / "scratch"; }
  // A fresh copy of the intact folder to damage.
  fs::path copy(const std::string& name) const {
    const fs::path dir = tmp_ / name;
    fs::copy(good(), dir, fs::copy_options::recursive);
    return dir;
  }
  Tensor ids() const { return from_vector(std::vector<int64_t>{1, 5, 9, 2, 30}, {1, 5}); }

  // The error loading `dir`: load_causal_lm throws it, and `liandan generate` prints it, identical,
  // as its one line on stderr.
  std::string load_error(const fs::path& dir) const {
    const std::string msg = test::error_message([&] { load_causal_lm(dir); });
    EXPECT_NE(msg, "<nothing thrown>");
    EXPECT_EQ(msg.find("<not an ld::Error"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    EXPECT_EQ(cli_error(run_liandan(generate_args(dir), scratch())), msg);
    ::testing::Test::RecordProperty("error", msg);  // in --gtest_output=xml, to read the messages
    return msg;
  }

  test::TempDir tmp_{"load_errors"};
  io::HfModelConfig config_;
  std::unique_ptr<CausalLM> model_;
};

TEST_F(LoadErrors, TheIntactFolderLoadsAndGenerates) {
  auto lm = load_causal_lm(good());
  EXPECT_EQ(max_abs_diff(lm->forward(ids()), model_->forward(ids())), 0.0f);
  const CliRun r = run_liandan(generate_args(good()), scratch());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::istringstream words(r.out);
  int64_t id = 0, n = 0;
  while (words >> id) {
    EXPECT_TRUE(id >= 0 && id < 50) << id;
    ++n;
  }
  EXPECT_GE(n, 1);  // 2, or fewer if EOS came first
  EXPECT_LE(n, 2);
}

TEST_F(LoadErrors, TruncatedSafetensorsNamesTheFileAndTheTensorCut) {
  const fs::path dir = copy("truncated");
  const fs::path file = dir / "model.safetensors";
  const std::string bytes = read_file(file);
  const RawSafetensors raw = RawSafetensors::read(file);

  write_file(file, bytes.substr(0, bytes.size() - 16));  // the last tensor loses 4 floats
  const std::string cut = load_error(dir);
  test::expect_mentions(cut, {file.string().c_str(), raw.last_tensor().c_str(), "data_offsets"});
  expect_blames_the_file(cut);

  write_file(file, bytes.substr(0, 8 + raw.header.dump().size() / 2));  // cut inside the header
  test::expect_mentions(load_error(dir), {file.string().c_str(), "header length", "truncated"});

  write_file(file, bytes.substr(0, 5));
  test::expect_mentions(load_error(dir), {file.string().c_str(), "truncated"});

  write_file(file, "");
  test::expect_mentions(load_error(dir), {file.string().c_str(), "truncated"});
}

TEST_F(LoadErrors, HeaderOffsetsThatLieNameTheFileAndTheTensors) {
  const fs::path dir = copy("lying");
  const fs::path file = dir / "model.safetensors";
  const RawSafetensors intact = RawSafetensors::read(file);
  const std::string q = "model.layers.0.self_attn.q_proj.weight", o = "model.layers.0.self_attn.o_proj.weight";
  ASSERT_EQ(intact.header[q]["shape"], intact.header[o]["shape"]);

  RawSafetensors overlap = intact;  // o_proj claims q_proj's bytes
  overlap.header[o]["data_offsets"] = intact.header[q]["data_offsets"];
  overlap.write(file);
  const std::string overlapping = load_error(dir);
  test::expect_mentions(overlapping, {file.string().c_str(), q.c_str(), o.c_str(), "overlap"});
  expect_blames_the_file(overlapping);

  RawSafetensors shifted = intact;  // o_proj starts 4 bytes into its neighbour
  const uint64_t begin = intact.header[o]["data_offsets"][0].get<uint64_t>() - 4;
  const uint64_t size = intact.header[o]["data_offsets"][1].get<uint64_t>() -
                        intact.header[o]["data_offsets"][0].get<uint64_t>();
  shifted.header[o]["data_offsets"] = {begin, begin + size};
  shifted.write(file);
  test::expect_mentions(load_error(dir), {file.string().c_str(), o.c_str(), "overlap"});

  RawSafetensors beyond = intact;  // past the end of the file
  const uint64_t end = intact.data.size();
  beyond.header[o]["data_offsets"] = {end, end + size};
  beyond.write(file);
  test::expect_mentions(load_error(dir), {file.string().c_str(), o.c_str(), "outside the data section"});

  RawSafetensors short_range = intact;  // fewer bytes than the shape needs
  short_range.header[o]["data_offsets"] = {0, 4};
  short_range.write(file);
  test::expect_mentions(load_error(dir), {file.string().c_str(), o.c_str(), "needs"});
}

TEST_F(LoadErrors, AMissingTensorIsNamed) {
  const fs::path dir = copy("missing");
  RawSafetensors raw = RawSafetensors::read(dir / "model.safetensors");
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  ASSERT_EQ(raw.header.erase(name), 1u);
  raw.write(dir / "model.safetensors");
  test::expect_mentions(load_error(dir), {dir.string().c_str(), "missing", name.c_str()});
}

TEST_F(LoadErrors, AnUnexpectedExtraTensorIsNamed) {
  const fs::path dir = copy("extra");
  RawSafetensors raw = RawSafetensors::read(dir / "model.safetensors");
  const std::string name = "model.layers.0.mlp.extra_proj.weight";
  const uint64_t end = raw.data.size();
  raw.header[name] = {{"dtype", "F32"}, {"shape", Json::array({4})}, {"data_offsets", {end, end + 16}}};
  raw.data.append(16, '\0');
  raw.write(dir / "model.safetensors");
  ASSERT_TRUE(io::SafetensorsFile::open(dir / "model.safetensors").contains(name));  // a valid file
  test::expect_mentions(load_error(dir), {dir.string().c_str(), "unexpected", name.c_str()});
}

TEST_F(LoadErrors, ConfigSizesThatDisagreeWithTheWeightsNameATensorAndItsShapes) {
  const io::HfModelConfig saved = io::read_hf_config(good());
  ASSERT_EQ(saved.stack.n_embd, 32);
  ASSERT_EQ(saved.stack.n_kv_head, 2);
  struct Change {
    const char* key;
    int64_t value;
    const char* tensor;
    const char* model_shape;
    const char* file_shape;
  };
  for (const Change& c : {Change{"hidden_size", 48, "model.embed_tokens.weight", "[50, 48]", "[50, 32]"},
                          Change{"num_key_value_heads", 4, "model.layers.0.self_attn.k_proj.weight", "[32, 32]",
                                 "[16, 32]"},
                          Change{"intermediate_size", 40, "model.layers.0.mlp.gate_proj.weight", "[40, 32]",
                                 "[48, 32]"}}) {
    SCOPED_TRACE(c.key);
    const fs::path dir = copy(std::string("sizes_") + c.key);
    Json config = Json::parse(read_file(dir / "config.json"));
    config[c.key] = c.value;
    write_file(dir / "config.json", config.dump(2));
    test::expect_mentions(load_error(dir), {dir.string().c_str(), c.tensor, c.model_shape, c.file_shape});
  }
}

TEST_F(LoadErrors, MalformedConfigJsonNamesTheFileAndTheField) {
  const fs::path dir = copy("config");
  const fs::path config = dir / "config.json";
  const std::string text = read_file(config);
  write_file(config, text.substr(0, text.size() / 2));
  test::expect_mentions(load_error(dir), {config.string().c_str(), "not valid JSON"});

  Json j = Json::parse(text);
  j["hidden_size"] = "32";
  write_file(config, j.dump());
  test::expect_mentions(load_error(dir), {config.string().c_str(), "\"hidden_size\"", "must be an integer"});

  j = Json::parse(text);
  j.erase("num_hidden_layers");
  write_file(config, j.dump());
  test::expect_mentions(load_error(dir), {config.string().c_str(), "missing", "num_hidden_layers"});

  fs::remove(config);
  test::expect_mentions(load_error(dir), {config.string().c_str(), "cannot open"});
}

TEST_F(LoadErrors, AnUnknownModelTypeListsTheSupportedOnes) {
  const fs::path dir = copy("model_type");
  Json j = Json::parse(read_file(dir / "config.json"));
  j["model_type"] = "falcon";
  write_file(dir / "config.json", j.dump());
  test::expect_mentions(load_error(dir), {(dir / "config.json").string().c_str(), "\"falcon\"",
                                          "gpt2, llama, mistral, qwen2, mixtral"});
  // A known type that is not a causal LM: the causal LMs are listed.
  write_file(dir / "config.json", R"({"model_type": "bert", "architectures": ["BertForMaskedLM"]})");
  test::expect_mentions(load_error(dir), {(dir / "config.json").string().c_str(), "\"bert\"",
                                          "not a causal language model", "gpt2, llama, mistral, qwen2"});
}

TEST_F(LoadErrors, AShardedCheckpointWhoseIndexNamesAMissingShard) {
  const fs::path dir = copy("sharded");
  const io::SafetensorsFile whole = io::SafetensorsFile::open(dir / "model.safetensors");
  std::vector<std::pair<std::string, Tensor>> first, second;
  Json weight_map = Json::object();
  const std::string shard1 = "model-00001-of-00002.safetensors", shard2 = "model-00002-of-00002.safetensors";
  for (const io::TensorInfo& t : whole.tensors()) {
    const bool later = t.name.rfind("model.layers.1.", 0) == 0 || t.name == "lm_head.weight";
    (later ? second : first).emplace_back(t.name, whole.get(t.name).clone());
    weight_map[t.name] = later ? shard2 : shard1;
  }
  io::save_safetensors(dir / shard1, first, {{"format", "pt"}});
  io::save_safetensors(dir / shard2, second, {{"format", "pt"}});
  fs::remove(dir / "model.safetensors");
  const fs::path index = dir / "model.safetensors.index.json";
  write_file(index, Json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2));
  // The intact shards load to the same model.
  EXPECT_EQ(max_abs_diff(load_causal_lm(dir)->forward(ids()), model_->forward(ids())), 0.0f);

  fs::rename(dir / shard2, tmp_ / shard2);
  const std::string no_shard = load_error(dir);
  test::expect_mentions(no_shard, {index.string().c_str(), shard2.c_str(), "missing"});
  expect_blames_the_file(no_shard);
  fs::rename(tmp_ / shard2, dir / shard2);

  // The index puts a tensor in a shard that does not hold it.
  Json moved = Json::parse(read_file(index));
  moved["weight_map"]["lm_head.weight"] = shard1;
  write_file(index, moved.dump(2));
  test::expect_mentions(load_error(dir), {index.string().c_str(), shard1.c_str(), "lm_head.weight"});
}

// --- writing a folder over or next to existing things

TEST_F(LoadErrors, SavePretrainedIntoAnExistingFolderWithoutForceChangesNothing) {
  const auto before = snapshot(good());
  const auto siblings = listing(tmp_.path());
  Generator gen(99);
  auto other = make_causal_lm(config_, gen);
  const std::string msg = test::error_message([&] { save_pretrained(*other, config_, good()); });
  test::expect_mentions(msg, {good().string().c_str(), "already exists", "--force"});
  EXPECT_EQ(snapshot(good()), before);
  EXPECT_EQ(listing(tmp_.path()), siblings);  // no temporary folder left behind

  // A save that fails midway (the tokenizer folder is missing, after the weights are written) keeps
  // the old folder even with force, and leaves nothing else.
  const std::string midway = test::error_message(
      [&] { save_pretrained(*other, config_, good(), /*force=*/true, tmp_ / "no_such_tokenizer"); });
  test::expect_mentions(midway, {"no_such_tokenizer"});
  EXPECT_EQ(snapshot(good()), before);
  EXPECT_EQ(listing(tmp_.path()), siblings);

  // With force it is replaced, whole.
  save_pretrained(*other, config_, good(), /*force=*/true);
  EXPECT_EQ(max_abs_diff(load_causal_lm(good())->forward(ids()), other->forward(ids())), 0.0f);
  EXPECT_EQ(listing(tmp_.path()), siblings);
}

TEST_F(LoadErrors, AFailedSaveLeavesNoFolderBehind) {
  // Fails midway: the weights are written into the temporary folder, then the tokenizer copy fails.
  const fs::path out = tmp_ / "new_model";
  const auto siblings = listing(tmp_.path());
  const std::string midway =
      test::error_message([&] { save_pretrained(*model_, config_, out, false, tmp_ / "no_such_tokenizer"); });
  test::expect_mentions(midway, {"no_such_tokenizer"});
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(listing(tmp_.path()), siblings);

  // The parent is a file: nothing can be created, and the file is untouched.
  const fs::path file = tmp_ / "a_file";
  write_file(file, "keep me");
  const auto with_file = listing(tmp_.path());
  const std::string msg = test::error_message([&] { save_pretrained(*model_, config_, file / "model"); });
  EXPECT_NE(msg, "<nothing thrown>");
  EXPECT_EQ(msg.find("<not an ld::Error"), std::string::npos) << msg;
  test::expect_mentions(msg, {"a_file"});
  EXPECT_EQ(read_file(file), "keep me");
  EXPECT_EQ(listing(tmp_.path()), with_file);

  // The output path is itself a file.
  const std::string onto_file = test::error_message([&] { save_pretrained(*model_, config_, file, true); });
  test::expect_mentions(onto_file, {"a_file", "not a folder"});
  EXPECT_EQ(read_file(file), "keep me");
  EXPECT_EQ(listing(tmp_.path()), with_file);
}

TEST_F(LoadErrors, ConvertIntoAnExistingFolderWithoutForceChangesNothing) {
  const fs::path bin = fs::path(LIANDAN_SHARED_DIR) / "models/stories260K/stories260K.bin";
  if (!fs::exists(bin)) GTEST_SKIP() << "needs " << bin;
  const auto before = snapshot(good());
  const auto siblings = listing(tmp_.path());
  auto convert = [&](const fs::path& out, const char* extra) {
    return run_liandan("convert --from llama2c " + quoted(bin) + " --to hf " + quoted(out) + extra, scratch());
  };
  const CliRun r = convert(good(), "");
  test::expect_mentions(cli_error(r), {good().string().c_str(), "already exists", "--force"});
  EXPECT_EQ(snapshot(good()), before);
  EXPECT_EQ(listing(tmp_.path()), siblings);

  const fs::path file = tmp_ / "a_file";
  write_file(file, "keep me");
  const auto with_file = listing(tmp_.path());
  test::expect_mentions(cli_error(convert(file / "out", "")), {"a_file"});
  EXPECT_EQ(read_file(file), "keep me");
  EXPECT_EQ(listing(tmp_.path()), with_file);

  const CliRun forced = convert(good(), " --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(load_causal_lm(good())->config().vocab_size, 512);  // stories260K's
  EXPECT_EQ(listing(tmp_.path()), with_file);
}

}  // namespace
}  // namespace ld::models
