// `liandan data prepare` end to end with the real GPT-2 tokenizer: shard round trip (ids read back ==
// encode(cleaned text) + EOS, in input order, split by hash), determinism across thread counts, the
// shard cap, .gz/.zst/jsonl/fortune inputs, and bad input failing with one clear error and no output.
#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/dataset_index.hpp"
#include "data/prepare.hpp"
#include "data/token_shard.hpp"
#include "test_util.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::data {
namespace {

namespace fs = std::filesystem;
const fs::path kGpt2 = fs::path(LIANDAN_SHARED_DIR) / "tokenizers/gpt2";

std::string doc_text(int i) {
  static const char* a[] = {"The lighthouse keeper", "A patient gardener", "My grandmother", "The night train",
                            "This small village"};
  static const char* b[] = {"counted the gulls", "planted early beans", "told a long story", "stopped at a station",
                            "waited for the rain"};
  return std::string(a[i % 5]) + " " + b[(i / 5) % 5] + " on day " + std::to_string(i) +
         ", and nobody asked why.\nThe evening was calm.";
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

std::vector<int32_t> read_split(const fs::path& dir, const std::vector<ShardEntry>& shards) {
  std::vector<int32_t> all;
  for (const ShardEntry& e : shards) {
    ShardReader r = ShardReader::open(dir / e.file);
    EXPECT_EQ(r.size(), e.tokens);
    EXPECT_EQ(r.documents(), e.documents);
    std::vector<int32_t> ids(size_t(r.size()));
    r.read(0, ids);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  return all;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

PrepareOptions options_for(const std::vector<fs::path>& inputs, const fs::path& out) {
  PrepareOptions o;
  o.inputs = inputs;
  o.tokenizer = kGpt2;
  o.out = out;
  o.val_fraction = 0.3;
  o.threads = 2;
  o.batch_documents = 16;
  return o;
}

TEST(DataPrepare, ShardsHoldEncodedKeptDocumentsInOrder) {
  test::TempDir tmp;
  std::string corpus;
  std::vector<std::string> originals;
  for (int i = 0; i < 60; ++i) originals.push_back(doc_text(i));
  originals.push_back(doc_text(3));                   // exact duplicate
  originals.push_back("too short");                   // dropped by min_chars
  originals.push_back(doc_text(61) + "\nMail me: someone@example.com");  // masked
  for (const auto& d : originals) corpus += d + "\n\n";
  write(tmp / "corpus.txt", corpus);
  PrepareOptions o = options_for({tmp / "corpus.txt"}, tmp / "out");
  const PrepareReport report = prepare_dataset(o);

  // The expected stream, built independently from the library's single steps.
  auto tokenizer = tok::load_tokenizer(kGpt2);
  const int32_t eos = *tokenizer->token_to_id("<|endoftext|>");
  std::vector<std::vector<int32_t>> expected;
  std::set<std::string> seen;
  for (std::string t : originals) {
    if (clean_document(t, o.filters).reason != DropReason::kept || !seen.insert(dedup_normalize(t)).second) continue;
    auto ids = tokenizer->encode(t);
    ids.push_back(eos);
    expected.push_back(ids);
  }
  ASSERT_EQ(expected.size(), 61u);

  const DatasetIndex index = read_dataset_index(tmp / "out");
  EXPECT_EQ(index.eos_id, eos);
  EXPECT_EQ(index.token_width, 2);
  const auto train = read_split(tmp / "out", index.splits.at("train"));
  const auto val = read_split(tmp / "out", index.splits.at("val"));
  // Walk the expected documents in order; each must be next in exactly one split.
  size_t ti = 0, vi = 0, in_val = 0;
  for (const auto& ids : expected) {
    auto next_is = [&](const std::vector<int32_t>& stream, size_t at) {
      return at + ids.size() <= stream.size() && std::equal(ids.begin(), ids.end(), stream.begin() + long(at));
    };
    if (next_is(train, ti)) {
      ti += ids.size();
    } else {
      ASSERT_TRUE(next_is(val, vi)) << "document missing or out of order";
      vi += ids.size();
      ++in_val;
    }
  }
  EXPECT_EQ(ti, train.size());
  EXPECT_EQ(vi, val.size());
  EXPECT_GT(in_val, 5u);  // 30% of 61 by hash: far from 0 and from all
  EXPECT_LT(in_val, 35u);

  EXPECT_EQ(report.documents_read, int64_t(originals.size()));
  EXPECT_EQ(report.duplicates, 1);
  EXPECT_EQ(report.filters.dropped[size_t(DropReason::too_short)], 1);
  EXPECT_EQ(report.filters.emails_masked, 1);
  EXPECT_EQ(report.splits.at("train").tokens, int64_t(train.size()));
  const auto json = nlohmann::json::parse(read_file(tmp / "out/report.json"));
  EXPECT_EQ(json["dedup"]["duplicates_removed"], 1);
  EXPECT_EQ(json["splits"]["val"]["documents"], int64_t(in_val));
  EXPECT_EQ(json["kept"], 61);
}

TEST(DataPrepare, OutputDoesNotDependOnThreadsAndRespectsShardCap) {
  test::TempDir tmp;
  std::string corpus;
  for (int i = 0; i < 120; ++i) corpus += doc_text(i) + "\n\n";
  write(tmp / "c.txt", corpus);
  PrepareOptions a = options_for({tmp / "c.txt"}, tmp / "a");
  a.threads = 1;
  a.shard_tokens = 300;
  PrepareOptions b = a;
  b.out = tmp / "b";
  b.threads = 4;
  b.batch_documents = 7;
  prepare_dataset(a);
  prepare_dataset(b);
  const DatasetIndex ia = read_dataset_index(tmp / "a");
  ASSERT_GT(ia.splits.at("train").size(), 3u);
  for (size_t i = 0; i < ia.splits.at("train").size(); ++i) {
    const ShardEntry& e = ia.splits.at("train")[i];
    char name[32];
    std::snprintf(name, sizeof name, "train-%05zu.bin", i);
    EXPECT_EQ(e.file, name);
    EXPECT_LE(e.tokens, 300);
    EXPECT_EQ(read_file(tmp / "a" / e.file), read_file(tmp / "b" / e.file)) << e.file;
  }
  EXPECT_EQ(read_file(tmp / "a/index.json"), read_file(tmp / "b/index.json"));
}

void write_gzip(const fs::path& p, const std::string& text) {
  gzFile f = gzopen(p.c_str(), "wb");
  gzwrite(f, text.data(), unsigned(text.size()));
  gzclose(f);
}

void write_zstd(const fs::path& p, const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  write(p, out);
}

TEST(DataPrepare, ReadsGzipZstdJsonlAndFortuneInputs) {
  test::TempDir tmp;
  fs::create_directories(tmp / "in/fortunes");
  write_gzip(tmp / "in/a.txt.gz", doc_text(1) + "\n\n" + doc_text(2) + "\n");
  write_zstd(tmp / "in/b.jsonl.zst", nlohmann::json{{"text", doc_text(3)}}.dump() + "\n" +
                                         nlohmann::json{{"text", doc_text(4)}}.dump() + "\n");
  write(tmp / "in/c.jsonl", nlohmann::json{{"body", doc_text(5)}}.dump() + "\n");  // needs --text-field body
  write(tmp / "in/fortunes/quotes", doc_text(6) + "\n%\n" + doc_text(7) + "\n%\n" + doc_text(8) + "\n");
  write(tmp / "in/fortunes/quotes.dat", std::string("\x00\x00\x00\x02 binary index", 18));

  std::vector<std::string> texts;
  for (const fs::path& f : list_input_files({tmp / "in"}))
    read_documents(f, {.format = InputFormat::automatic, .text_field = f.filename() == "c.jsonl" ? "body" : "text", .doc_per_line = false, .on_bad_line = {}},
                   [&](Document&& d) { texts.push_back(d.text); });
  const std::vector<std::string> want = {doc_text(1), doc_text(2), doc_text(3), doc_text(4),
                                         doc_text(5), doc_text(6), doc_text(7), doc_text(8)};
  EXPECT_EQ(texts, want);  // sorted walk: a.txt.gz, b.jsonl.zst, c.jsonl, fortunes/quotes; .dat skipped

  write(tmp / "lines.txt", "first doc\n\nsecond doc\nthird doc\n");
  std::vector<std::string> per_line, per_block;
  read_documents(tmp / "lines.txt", {.format = InputFormat::text, .text_field = "text", .doc_per_line = true, .on_bad_line = {}},
                 [&](Document&& d) { per_line.push_back(d.text); });
  read_documents(tmp / "lines.txt", {}, [&](Document&& d) { per_block.push_back(d.source + " " + d.text); });
  EXPECT_EQ(per_line, (std::vector<std::string>{"first doc", "second doc", "third doc"}));
  EXPECT_EQ(per_block, (std::vector<std::string>{(tmp / "lines.txt:1 first doc").string(),
                                                 (tmp / "lines.txt:3 second doc\nthird doc").string()}));

  const fs::path zh = "/usr/share/games/fortunes/chinese";
  if (!fs::exists(zh)) GTEST_SKIP() << "needs: apt-get install fortunes-zh";
  int64_t n = 0;
  read_documents(zh, {}, [&](Document&& d) {
    ++n;
    EXPECT_EQ(d.text.find("\n%\n"), std::string::npos);
  });
  EXPECT_GT(n, 1000);
}

TEST(DataPrepare, BadInputGivesOneClearErrorAndNoOutput) {
  test::TempDir tmp;
  write(tmp / "bad.jsonl", "{\"text\": \"fine document number one here\"}\n{\"text\": oops}\n");
  write(tmp / "nofield.jsonl", "{\"text\": \"fine document number one here\"}\n\n{\"content\": \"x\"}\n");
  write(tmp / "notzstd.txt.zst", "this is not zstd at all");
  auto run = [&](const fs::path& input) {
    return test::error_message([&] { prepare_dataset(options_for({input}, tmp / "out")); });
  };
  test::expect_mentions(run(tmp / "bad.jsonl"), {"bad.jsonl:2", "malformed JSON"});
  test::expect_mentions(run(tmp / "nofield.jsonl"), {"nofield.jsonl:3", "no \"text\" field", "--text-field"});
  test::expect_mentions(run(tmp / "notzstd.txt.zst"), {"notzstd.txt.zst", "not a valid zstd file"});
  test::expect_mentions(run(tmp / "missing.txt"), {"missing.txt", "no such file"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
  for (const auto& e : fs::directory_iterator(tmp.path()))  // no temporary folder left behind either
    EXPECT_FALSE(e.path().filename().string().starts_with(".out")) << e.path();
}

TEST(DataPrepare, SkipBadLinesGoesOnAndCountsThem) {
  test::TempDir tmp;
  const std::string one = "The lighthouse keeper counted the gulls on a calm evening.";
  const std::string two = "A patient gardener planted early beans before the rain.";
  write(tmp / "mixed.jsonl", "{\"text\": \"" + one + "\"}\n{\"text\": oops}\n{\"other\": 1}\n[1]\n{\"text\": \"" + two +
                                 "\"}\n");
  PrepareOptions o = options_for({tmp / "mixed.jsonl"}, tmp / "out");
  o.skip_bad_lines = true;
  o.val_fraction = 0;
  const PrepareReport r = prepare_dataset(o);
  EXPECT_EQ(r.bad_lines_skipped, 3);
  EXPECT_EQ(r.documents_read, 2);
  EXPECT_EQ(r.splits.at("train").documents, 2);
  EXPECT_NE(read_file(tmp / "out/report.json").find("\"bad_lines_skipped\": 3"), std::string::npos);
}

TEST(DataPrepare, AnEmptyCorpusIsAnErrorAndWritesNothing) {
  test::TempDir tmp;
  write(tmp / "empty.txt", "\n\n   \n");
  test::expect_mentions(test::error_message([&] { prepare_dataset(options_for({tmp / "empty.txt"}, tmp / "out")); }),
                        {"corpus is empty"});
  write(tmp / "short.txt", "hi\n\nok\n");  // every document dropped by the length filter
  test::expect_mentions(test::error_message([&] { prepare_dataset(options_for({tmp / "short.txt"}, tmp / "out")); }),
                        {"all 2 documents were dropped"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

TEST(DataPrepare, CliRefusesAnExistingOutputFolder) {
  test::TempDir tmp;
  write(tmp / "c.txt", doc_text(1) + "\n\n" + doc_text(2) + "\n");
  fs::create_directories(tmp / "out");
  write(tmp / "out/keep.txt", "mine");
  const std::string cmd = std::string(LIANDAN_BINARY) + " data prepare --input " + (tmp / "c.txt").string() +
                          " --tokenizer " + kGpt2.string() + " --out " + (tmp / "out").string() + " 2> " +
                          (tmp / "err.txt").string() + " > " + (tmp / "stdout.txt").string();
  EXPECT_NE(std::system(cmd.c_str()), 0);
  test::expect_mentions(read_file(tmp / "err.txt"), {"output folder already exists", "--force"});
  EXPECT_EQ(std::vector<fs::path>(fs::directory_iterator(tmp / "out"), {}), std::vector<fs::path>{tmp / "out/keep.txt"});

  EXPECT_EQ(std::system((cmd.substr(0, cmd.find(" 2>")) + " --force --val-fraction 0 2> " + (tmp / "err.txt").string() +
                         " > " + (tmp / "stdout.txt").string()).c_str()),
            0);
  test::expect_mentions(read_file(tmp / "stdout.txt"), {"documents read", "train tokens", "duplicates removed"});
  EXPECT_TRUE(fs::exists(tmp / "out/train-00000.bin"));
  EXPECT_FALSE(fs::exists(tmp / "out/keep.txt"));
}

TEST(DataPrepare, TokenizerWithoutEosNeedsEosId) {
  test::TempDir tmp;
  tok::ByteLevelBpeData data;
  auto gpt2 = tok::load_tokenizer(kGpt2);
  for (int i = 0; i < 256; ++i) data.vocab.push_back(gpt2->id_to_token(i));  // GPT-2's first 256 ids are the bytes
  tok::save_tokenizer_json(data, tmp / "tok");
  write(tmp / "c.txt", doc_text(1) + "\n");
  PrepareOptions o = options_for({tmp / "c.txt"}, tmp / "out");
  o.tokenizer = tmp / "tok";
  test::expect_mentions(test::error_message([&] { prepare_dataset(o); }), {"no end-of-text token", "--eos-id"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
  o.eos_id = 10;
  const PrepareReport r = prepare_dataset(o);
  EXPECT_EQ(r.eos_id, 10);
  EXPECT_EQ(read_dataset_index(tmp / "out").eos_id, 10);
}

}  // namespace
}  // namespace ld::data
