// The dataset index and the training/eval loaders: windows and their shifted targets, every window
// once per epoch across ranks, seeded order, exact resume, prefetch on = off, and the errors.
#include "data/loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"
#include "test_util.hpp"

namespace ld::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int32_t kEos = 0;

// Documents of lengths cycling through 1..7 with ids counting up from `first_id`: every non-EOS id
// is unique, so a window of T >= 2 tokens is identified by its contents.
std::vector<std::vector<int32_t>> make_documents(int count, int32_t& next_id) {
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < count; ++d) {
    std::vector<int32_t> doc;
    for (int i = 0; i < 1 + d % 7; ++i) doc.push_back(next_id++);
    docs.push_back(doc);
  }
  return docs;
}

// Writes the split's shards (documents per shard as given) and adds them to `index`; returns the
// split's token stream as the loader should see it.
std::vector<int32_t> write_split(const fs::path& dir, DatasetIndex& index, const std::string& split,
                                 const std::vector<int>& docs_per_shard, int32_t& next_id) {
  std::vector<int32_t> stream;
  for (size_t s = 0; s < docs_per_shard.size(); ++s) {
    const std::string file = split + "-" + std::to_string(s) + ".bin";
    ShardWriter w(dir / file, index.token_width);
    for (const auto& doc : make_documents(docs_per_shard[s], next_id)) {
      w.append_document(doc, kEos);
      stream.insert(stream.end(), doc.begin(), doc.end());
      stream.push_back(kEos);
    }
    w.finish();
    index.splits[split].push_back({file, w.tokens(), w.documents()});
  }
  return stream;
}

DatasetIndex base_index() {
  DatasetIndex index;
  index.tokenizer = "test";
  index.vocab_size = 100000;
  index.eos_id = kEos;
  index.token_width = 4;
  return index;
}

// A dataset with a train split of three shards (one of them empty) and a val split of one.
struct Dataset {
  test::TempDir dir{"liandan_loader"};
  std::vector<int32_t> train, val;
  explicit Dataset(std::vector<int> train_docs = {20, 0, 13}, int val_docs = 9) {
    DatasetIndex index = base_index();
    int32_t next_id = 1;
    train = write_split(dir.path(), index, "train", train_docs, next_id);
    val = write_split(dir.path(), index, "val", {val_docs}, next_id);
    write_dataset_index(dir.path(), index);
  }
};

// Window k of a stream: tokens [k*T, k*T + T + 1).
std::vector<int64_t> window(const std::vector<int32_t>& stream, int64_t k, int64_t T) {
  return std::vector<int64_t>(stream.begin() + k * T, stream.begin() + k * T + T + 1);
}

// Every row of a batch: checks that targets are the inputs shifted by one (against the stream) and
// returns the window index of each row.
std::vector<int64_t> window_ids(const Batch& b, const std::vector<int32_t>& stream, int64_t T) {
  const int64_t windows = (int64_t(stream.size()) - 1) / T;
  std::map<std::vector<int64_t>, int64_t> by_inputs;
  for (int64_t k = 0; k < windows; ++k) {
    std::vector<int64_t> w = window(stream, k, T);
    w.pop_back();
    by_inputs[w] = k;
  }
  EXPECT_EQ(b.inputs.dtype(), DType::i64);
  EXPECT_EQ(b.targets.dtype(), DType::i64);
  const int64_t rows = b.inputs.shape()[0];
  EXPECT_EQ(b.inputs.shape(), (Shape{rows, T}));
  EXPECT_EQ(b.targets.shape(), (Shape{rows, T}));
  const std::vector<int64_t> in = b.inputs.to_vector<int64_t>(), tg = b.targets.to_vector<int64_t>();
  std::vector<int64_t> ids;
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<int64_t> row(in.begin() + r * T, in.begin() + (r + 1) * T);
    auto it = by_inputs.find(row);
    EXPECT_NE(it, by_inputs.end()) << "row " << r << " is not a window of the stream";
    if (it == by_inputs.end()) continue;
    const std::vector<int64_t> expected = window(stream, it->second, T);
    EXPECT_EQ(std::vector<int64_t>(tg.begin() + r * T, tg.begin() + (r + 1) * T),
              std::vector<int64_t>(expected.begin() + 1, expected.end()));
    ids.push_back(it->second);
  }
  return ids;
}

std::vector<std::vector<int64_t>> take(DataLoader& loader, int n) {
  std::vector<std::vector<int64_t>> out;
  for (int i = 0; i < n; ++i) {
    const Batch b = loader.next();
    std::vector<int64_t> v = b.inputs.to_vector<int64_t>();
    const std::vector<int64_t> t = b.targets.to_vector<int64_t>();
    v.insert(v.end(), t.begin(), t.end());
    out.push_back(v);
  }
  return out;
}

LoaderOptions options(int64_t B, int64_t T, uint64_t seed = 7, int rank = 0, int world = 1, int prefetch = 2) {
  return {.batch_size = B,
          .seq_len = T,
          .seed = seed,
          .shuffle = true,
          .rank = rank,
          .world_size = world,
          .prefetch = prefetch};
}

// --- dataset index

TEST(DatasetIndex, WriteThenReadRoundTrips) {
  test::TempDir dir;
  DatasetIndex index = base_index();
  index.splits["train"] = {{"train-00000.bin", 100, 3}, {"sub/train-00001.bin", 5, 1}};
  index.splits["val"] = {};
  write_dataset_index(dir.path(), index);
  const DatasetIndex back = read_dataset_index(dir.path());
  EXPECT_EQ(back.version, 1);
  EXPECT_EQ(back.tokenizer, "test");
  EXPECT_EQ(back.vocab_size, 100000);
  EXPECT_EQ(back.eos_id, kEos);
  EXPECT_EQ(back.token_width, 4);
  ASSERT_EQ(back.splits.size(), 2u);
  ASSERT_EQ(back.splits.at("train").size(), 2u);
  EXPECT_EQ(back.splits.at("train")[1].file, "sub/train-00001.bin");
  EXPECT_EQ(back.splits.at("train")[1].tokens, 5);
  EXPECT_EQ(back.splits.at("train")[1].documents, 1);
  EXPECT_TRUE(back.splits.at("val").empty());

  // The file itself, read as plain JSON: the documented field names.
  std::ifstream in(dir / "index.json");
  const json j = json::parse(in);
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["token_width"], 4);
  EXPECT_EQ(j["splits"]["train"][0]["file"], "train-00000.bin");
  EXPECT_EQ(j["splits"]["train"][0]["tokens"], 100);
  EXPECT_EQ(j["splits"]["train"][0]["documents"], 3);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1) << "temporary left behind";
}

TEST(DatasetIndex, BadIndexIsNotWritten) {
  test::TempDir dir;
  DatasetIndex index = base_index();
  index.eos_id = 100000;
  test::expect_mentions(test::error_message([&] { write_dataset_index(dir.path(), index); }),
                        {"index.json", "eos_id 100000"});
  index = base_index();
  index.token_width = 2;  // 100000 ids need 4 bytes
  test::expect_mentions(test::error_message([&] { write_dataset_index(dir.path(), index); }), {"token_width 2"});
  index = base_index();
  index.splits["train"] = {{"../escape.bin", 1, 1}};
  test::expect_mentions(test::error_message([&] { write_dataset_index(dir.path(), index); }), {"../escape.bin"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

void expect_bad_index(const std::string& text, std::initializer_list<const char*> mentions) {
  test::TempDir dir;
  std::ofstream(dir / "index.json") << text;
  const std::string msg = test::error_message([&] { read_dataset_index(dir.path()); });
  test::expect_mentions(msg, {"index.json"});
  test::expect_mentions(msg, mentions);
}

TEST(DatasetIndex, BadIndexJsonErrors) {
  const std::string good_head =
      R"({"version": 1, "tokenizer": "t", "vocab_size": 50257, "eos_id": 50256, "token_width": 2, )";
  expect_bad_index("{not json", {"not valid JSON"});
  expect_bad_index("[1, 2]", {"JSON object"});
  expect_bad_index(R"({"version": 2, "vocab_size": 5, "eos_id": 0, "token_width": 2, "splits": {}})", {"version 2"});
  expect_bad_index(R"({"version": 1, "eos_id": 0, "token_width": 2, "splits": {}})", {"vocab_size"});
  expect_bad_index(R"({"version": 1, "vocab_size": "big", "eos_id": 0, "token_width": 2, "splits": {}})",
                   {"vocab_size", "integer"});
  expect_bad_index(good_head + R"("splits": []})", {"splits"});
  expect_bad_index(good_head + R"("splits": {"train": [{"file": "a.bin", "tokens": 3}]}})",
                   {"splits.train[0]", "documents"});
  expect_bad_index(good_head + R"("splits": {"train": [{"file": "a.bin", "tokens": -3, "documents": 1}]}})",
                   {"splits.train[0]", "-3"});
  expect_bad_index(R"({"version": 1, "vocab_size": 70000, "eos_id": 0, "token_width": 2, "splits": {}})",
                   {"token_width 2", "70000"});
  test::TempDir empty;
  test::expect_mentions(test::error_message([&] { read_dataset_index(empty.path()); }), {"index.json", "cannot open"});
}

// --- the stream and its windows

TEST(Loader, StreamReadsAcrossShards) {
  Dataset d;
  const TokenStream s(d.dir.path(), "train");
  ASSERT_EQ(s.size(), int64_t(d.train.size()));
  std::vector<int32_t> all(d.train.size());
  s.read(0, all);
  EXPECT_EQ(all, d.train);
  // Every short range, so that every shard boundary (and the empty shard) is crossed.
  std::vector<int32_t> part(5);
  for (size_t start = 0; start + part.size() <= d.train.size(); ++start) {
    s.read(int64_t(start), part);
    ASSERT_EQ(part, std::vector<int32_t>(d.train.begin() + start, d.train.begin() + start + part.size())) << start;
  }
}

TEST(Loader, UnshuffledBatchesAreConsecutiveWindowsWithShiftedTargets) {
  Dataset d;
  const int64_t T = 5, B = 3;
  LoaderOptions o = options(B, T);
  o.shuffle = false;
  DataLoader loader(d.dir.path(), "train", o);
  const int64_t W = (int64_t(d.train.size()) - 1) / T;
  EXPECT_EQ(loader.windows(), W);
  EXPECT_EQ(loader.steps_per_epoch(), W / B);
  for (int64_t step = 0; step < loader.steps_per_epoch(); ++step) {
    const Batch b = loader.next();
    const std::vector<int64_t> in = b.inputs.to_vector<int64_t>(), tg = b.targets.to_vector<int64_t>();
    for (int64_t r = 0; r < B; ++r) {
      const std::vector<int64_t> w = window(d.train, step * B + r, T);
      EXPECT_EQ(std::vector<int64_t>(in.begin() + r * T, in.begin() + (r + 1) * T),
                std::vector<int64_t>(w.begin(), w.end() - 1));
      EXPECT_EQ(std::vector<int64_t>(tg.begin() + r * T, tg.begin() + (r + 1) * T),
                std::vector<int64_t>(w.begin() + 1, w.end()));
    }
  }
  EXPECT_EQ(loader.cursor(), (LoaderCursor{1, 0}));
}

TEST(Loader, EpochPermutationIsAUniformShuffle) {
  EXPECT_TRUE(epoch_permutation(0, 1, 0).empty());
  std::vector<int64_t> p = epoch_permutation(1000, 42, 3);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i);
  EXPECT_NE(p, sorted);
  EXPECT_EQ(p, epoch_permutation(1000, 42, 3));
  EXPECT_NE(p, epoch_permutation(1000, 42, 4));
  EXPECT_NE(p, epoch_permutation(1000, 43, 3));
  // All 24 orders of 4 windows, each about equally often (a Sattolo-style off-by-one would give
  // only the 6 cyclic ones; a biased draw would skew the counts).
  std::map<std::vector<int64_t>, int> counts;
  const int draws = 4800;
  for (int seed = 0; seed < draws; ++seed) counts[epoch_permutation(4, uint64_t(seed), 0)]++;
  EXPECT_EQ(counts.size(), 24u);
  for (const auto& [perm, n] : counts) EXPECT_NEAR(n, draws / 24, 60) << "a permutation appears " << n << " times";
}

// Every window at most once per epoch, across ranks, with exactly steps * B * world used.
void check_epoch_coverage(int world, int64_t B, int64_t T) {
  Dataset d({40, 3, 25});
  std::vector<std::unique_ptr<DataLoader>> ranks;
  for (int r = 0; r < world; ++r)
    ranks.push_back(std::make_unique<DataLoader>(d.dir.path(), "train", options(B, T, 11, r, world)));
  const int64_t W = (int64_t(d.train.size()) - 1) / T;
  const int64_t steps = W / (B * world);
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::set<int64_t> seen;
    int64_t used = 0;
    for (auto& loader : ranks) {
      EXPECT_EQ(loader->steps_per_epoch(), steps);
      for (int64_t s = 0; s < steps; ++s) {
        const Batch b = loader->next();
        for (int64_t k : window_ids(b, d.train, T)) {
          EXPECT_TRUE(seen.insert(k).second)
              << "window " << k << " twice in epoch " << epoch << " (world " << world << ")";
          ++used;
        }
      }
      EXPECT_EQ(loader->cursor(), (LoaderCursor{epoch + 1, 0}));
    }
    EXPECT_EQ(used, steps * B * world);
    EXPECT_EQ(int64_t(seen.size()), steps * B * world);
    EXPECT_GE(W - int64_t(seen.size()), 0);
    EXPECT_LT(W - int64_t(seen.size()), B * world) << "more windows skipped than the remainder";
  }
}

TEST(Loader, EveryWindowOncePerEpochOneRank) { check_epoch_coverage(1, 4, 6); }
TEST(Loader, EveryWindowOncePerEpochTwoRanks) { check_epoch_coverage(2, 3, 5); }
TEST(Loader, EveryWindowOncePerEpochThreeRanks) { check_epoch_coverage(3, 2, 4); }

TEST(Loader, RemainderIsDroppedAndVariesByEpoch) {
  // With W not a multiple of B, the skipped windows come from the end of each epoch's permutation,
  // so over a few epochs every window gets used.
  Dataset d;
  const int64_t T = 4, B = 5;
  DataLoader loader(d.dir.path(), "train", options(B, T, 3));
  ASSERT_NE(loader.windows() % B, 0);
  std::set<int64_t> ever;
  for (int epoch = 0; epoch < 6; ++epoch)
    for (int64_t s = 0; s < loader.steps_per_epoch(); ++s)
      for (int64_t k : window_ids(loader.next(), d.train, T)) ever.insert(k);
  EXPECT_EQ(int64_t(ever.size()), loader.windows());
}

TEST(Loader, SameSeedSameOrderDifferentSeedDifferentOrder) {
  Dataset d;
  DataLoader a(d.dir.path(), "train", options(2, 5, 1));
  DataLoader b(d.dir.path(), "train", options(2, 5, 1));
  DataLoader c(d.dir.path(), "train", options(2, 5, 2));
  const int n = int(a.steps_per_epoch()) * 2;
  const auto ta = take(a, n), tb = take(b, n), tc = take(c, n);
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  // Epochs are shuffled differently too.
  const size_t half = size_t(n / 2);
  EXPECT_NE(std::vector(ta.begin(), ta.begin() + long(half)), std::vector(ta.begin() + long(half), ta.end()));
}

void check_resume(int consumed_before, int more, int world, int rank, int prefetch) {
  Dataset d;
  const LoaderOptions o = options(2, 4, 5, rank, world, prefetch);
  DataLoader straight(d.dir.path(), "train", o);
  const auto all = take(straight, consumed_before + more);

  std::string saved;
  {
    DataLoader first(d.dir.path(), "train", o);
    take(first, consumed_before);
    saved = json(first.cursor()).dump();  // what the trainer writes into trainer_state.json
  }
  DataLoader resumed(d.dir.path(), "train", o, json::parse(saved).get<LoaderCursor>());
  EXPECT_EQ(resumed.cursor(), json::parse(saved).get<LoaderCursor>());
  const auto after = take(resumed, more);
  EXPECT_EQ(after, std::vector(all.begin() + consumed_before, all.end()))
      << "resume after " << consumed_before << " batches (world " << world << ", rank " << rank << ")";
}

TEST(Loader, ResumeMidEpochContinuesExactly) {
  Dataset d;
  const int64_t steps = DataLoader(d.dir.path(), "train", options(2, 4, 5)).steps_per_epoch();
  ASSERT_GE(steps, 4);
  check_resume(2, int(steps), 1, 0, 2);
  check_resume(1, 5, 1, 0, 0);
  check_resume(2, 5, 2, 1, 3);
}

TEST(Loader, ResumeAcrossAnEpochBoundaryContinuesExactly) {
  Dataset d;
  const int steps = int(DataLoader(d.dir.path(), "train", options(2, 4, 5)).steps_per_epoch());
  check_resume(steps, steps + 2, 1, 0, 2);      // cursor exactly at the boundary: {1, 0}
  check_resume(steps + 1, steps + 3, 1, 0, 2);  // mid epoch 1, running into epoch 2
  check_resume(steps - 1, 3, 1, 0, 1);          // the last batch of epoch 0, then epoch 1
}

TEST(Loader, CursorIsTheOneAfterTheBatch) {
  Dataset d;
  DataLoader loader(d.dir.path(), "train", options(2, 4, 5, 1, 3));
  EXPECT_EQ(loader.cursor(), (LoaderCursor{0, 0}));
  const Batch b = loader.next();
  EXPECT_EQ(b.cursor, (LoaderCursor{0, 6}));  // one global step of 2 x 3 windows
  EXPECT_EQ(loader.cursor(), b.cursor);
  EXPECT_EQ(json(b.cursor), json::parse(R"({"epoch": 0, "position": 6})"));
}

TEST(Loader, PrefetchOnAndOffGiveTheSameBatches) {
  Dataset d;
  DataLoader off(d.dir.path(), "train", options(3, 5, 9, 0, 1, 0));
  DataLoader on1(d.dir.path(), "train", options(3, 5, 9, 0, 1, 1));
  DataLoader on4(d.dir.path(), "train", options(3, 5, 9, 0, 1, 4));
  const int n = int(off.steps_per_epoch()) * 3 + 1;
  const auto a = take(off, n);
  EXPECT_EQ(take(on1, n), a);
  EXPECT_EQ(take(on4, n), a);
}

TEST(Loader, DestroyingWithAFullQueueStopsTheThread) {
  Dataset d;
  for (int prefetch : {1, 2, 8}) {
    DataLoader loader(d.dir.path(), "train", options(1, 3, 1, 0, 1, prefetch));
    take(loader, 2);
  }  // would hang here if the producer waited forever on a full queue
  { DataLoader untouched(d.dir.path(), "train", options(1, 3)); }
  SUCCEED();
}

TEST(Prefetcher, ErrorInTheThreadIsRethrownAfterTheBatchesBeforeIt) {
  std::atomic<int> made = 0;
  Prefetcher p(
      [&] {
        LD_CHECK(made < 3, "token shard x.bin: read failed");
        Batch b;
        b.cursor = {0, made++};
        return b;
      },
      2);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(p.pop().cursor.position, i);
  test::expect_mentions(test::error_message([&] { p.pop(); }), {"x.bin", "read failed"});
  test::expect_mentions(test::error_message([&] { p.pop(); }), {"x.bin", "read failed"});  // and stays failed
}

TEST(Prefetcher, HoldsAtMostCapacityBatchesAhead) {
  std::atomic<int> made = 0;
  Prefetcher p(
      [&] {
        Batch b;
        b.cursor = {0, made++};
        return b;
      },
      3);
  // The producer fills the queue (3) and builds the next one only when pop() makes room.
  for (int i = 0; i < 200 && made < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(made.load(), 3);
  EXPECT_EQ(p.pop().cursor.position, 0);
  for (int i = 0; i < 200 && made < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(made.load(), 4);
}

// --- errors

TEST(Loader, MissingShardIsNamed) {
  Dataset d;
  fs::remove(d.dir / "train-2.bin");
  const std::string msg = test::error_message([&] { DataLoader(d.dir.path(), "train", options(1, 4)); });
  test::expect_mentions(msg, {"index.json", "train-2.bin", "missing"});
}

TEST(Loader, ShardDisagreeingWithIndexIsNamed) {
  Dataset d;
  {
    ShardWriter w(d.dir / "train-0.bin", 4);
    const std::vector<int32_t> ids = {1, 2};
    w.append_document(ids, kEos);
    w.finish();
  }
  test::expect_mentions(test::error_message([&] { DataLoader(d.dir.path(), "train", options(1, 4)); }),
                        {"train-0.bin", "3 tokens", "index.json"});
}

TEST(Loader, SequenceLongerThanTheSplitIsAnError) {
  Dataset d;
  const int64_t n = int64_t(d.train.size());
  const std::string msg = test::error_message([&] { DataLoader(d.dir.path(), "train", options(1, n)); });
  test::expect_mentions(msg,
                        {"'train'", std::to_string(n).c_str(), ("seq_len + 1 = " + std::to_string(n + 1)).c_str()});
  // T = n - 1 fits exactly one window.
  DataLoader one(d.dir.path(), "train", options(1, n - 1));
  EXPECT_EQ(one.windows(), 1);
  test::expect_mentions(test::error_message([&] {
                          EvalLoader(d.dir.path(), "val", {.batch_size = 1, .seq_len = int64_t(d.val.size())});
                        }),
                        {"'val'", "seq_len + 1"});
}

TEST(Loader, BadOptionsAndCursorsAreErrors) {
  Dataset d;
  test::expect_mentions(test::error_message([&] { DataLoader(d.dir.path(), "test", options(1, 4)); }),
                        {"no split 'test'", "train, val"});
  test::expect_mentions(test::error_message([&] { DataLoader(d.dir.path(), "train", options(1, 4, 0, 2, 2)); }),
                        {"rank 2", "world size 2"});
  test::expect_mentions(test::error_message([&] { DataLoader(d.dir.path(), "train", options(1000, 4)); }),
                        {"one step", "1000"});
  const int64_t W = DataLoader(d.dir.path(), "train", options(1, 4)).windows();
  test::expect_mentions(test::error_message([&] {
                          DataLoader(d.dir.path(), "train", options(1, 4), {0, W + 1});
                        }),
                        {"cursor", std::to_string(W + 1).c_str()});
  test::expect_mentions(
      test::error_message([&] { json::parse(R"({"epoch": -1, "position": 0})").get<LoaderCursor>(); }),
      {"loader cursor", "epoch"});
  test::expect_mentions(test::error_message([&] { json::parse(R"({"epoch": 1})").get<LoaderCursor>(); }),
                        {"loader cursor", "position"});
}

TEST(Loader, BadIndexJsonIsAnErrorFromTheLoader) {
  Dataset d;
  std::ofstream(d.dir / "index.json") << "{\"version\": 1";
  test::expect_mentions(test::error_message([&] { DataLoader(d.dir.path(), "train", options(1, 4)); }),
                        {"index.json", "not valid JSON"});
}

// --- evaluation

TEST(EvalLoader, InOrderWithAShortLastBatch) {
  Dataset d;
  const int64_t T = 3, B = 4;
  EvalLoader eval(d.dir.path(), "val", {.batch_size = B, .seq_len = T});
  const int64_t W = (int64_t(d.val.size()) - 1) / T;
  ASSERT_NE(W % B, 0) << "the test wants a partial last batch";
  EXPECT_EQ(eval.batches(), (W + B - 1) / B);
  std::vector<int64_t> order;
  while (auto b = eval.next())
    for (int64_t k : window_ids(*b, d.val, T)) order.push_back(k);
  std::vector<int64_t> expected(static_cast<size_t>(W));
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(order, expected);
  eval.reset();
  EXPECT_TRUE(eval.next().has_value());
}

TEST(EvalLoader, CapAndRanksSplitTheSameBatches) {
  Dataset d;
  const int64_t T = 2, B = 2, K = 5;
  std::vector<int64_t> one_rank;
  EvalLoader single(d.dir.path(), "val", {.batch_size = B, .seq_len = T, .max_batches = K});
  EXPECT_EQ(single.batches(), K);
  while (auto b = single.next())
    for (int64_t k : window_ids(*b, d.val, T)) one_rank.push_back(k);
  EXPECT_EQ(int64_t(one_rank.size()), K * B);
  std::set<int64_t> across;
  int64_t total = 0;
  for (int r = 0; r < 3; ++r) {
    EvalLoader e(d.dir.path(), "val", {.batch_size = B, .seq_len = T, .max_batches = K, .rank = r, .world_size = 3});
    EXPECT_EQ(e.batches(), r < 2 ? 2 : 1);
    while (auto b = e.next())
      for (int64_t k : window_ids(*b, d.val, T)) {
        across.insert(k);
        ++total;
      }
  }
  EXPECT_EQ(total, K * B);
  EXPECT_EQ(across, std::set<int64_t>(one_rank.begin(), one_rank.end()));
}

}  // namespace
}  // namespace ld::data
