// Token shards: round trips at both widths, the byte layout, and the errors a damaged file gives.
#include "data/token_shard.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace ld::data {
namespace {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// A shard written independently of ShardWriter: the layout documented in token_shard.hpp.
std::string hand_made_shard(uint32_t version, uint32_t width, uint64_t count, uint64_t docs, size_t payload_bytes) {
  std::string s(kShardMagic, 8);
  s.append(reinterpret_cast<const char*>(&version), 4);
  s.append(reinterpret_cast<const char*>(&width), 4);
  s.append(reinterpret_cast<const char*>(&count), 8);
  s.append(reinterpret_cast<const char*>(&docs), 8);
  s.append(payload_bytes, '\x01');
  return s;
}

std::vector<int32_t> read_all(const ShardReader& r) {
  std::vector<int32_t> out(size_t(r.size()));
  r.read(0, out);
  return out;
}

TEST(TokenShard, WidthForVocabulary) {
  EXPECT_EQ(token_width_for(50257), 2);
  EXPECT_EQ(token_width_for(65536), 2);  // ids 0..65535
  EXPECT_EQ(token_width_for(65537), 4);
  EXPECT_EQ(token_width_for(151936), 4);
}

void round_trip(int width, const std::vector<std::vector<int32_t>>& docs, int32_t eos) {
  test::TempDir dir;
  const fs::path path = dir / "s.bin";
  std::vector<int32_t> expected;
  {
    ShardWriter w(path, width);
    for (const auto& d : docs) {
      w.append_document(d, eos);
      expected.insert(expected.end(), d.begin(), d.end());
      expected.push_back(eos);
    }
    EXPECT_EQ(w.tokens(), int64_t(expected.size()));
    EXPECT_EQ(w.documents(), int64_t(docs.size()));
    w.finish();
  }
  EXPECT_EQ(fs::file_size(path), uint64_t(kShardHeaderBytes) + expected.size() * size_t(width));
  const ShardReader r = ShardReader::open(path);
  EXPECT_EQ(r.token_width(), width);
  EXPECT_EQ(r.size(), int64_t(expected.size()));
  EXPECT_EQ(r.documents(), int64_t(docs.size()));
  EXPECT_EQ(read_all(r), expected);
  // A read from the middle.
  std::vector<int32_t> mid(3);
  r.read(2, mid);
  EXPECT_EQ(mid, std::vector<int32_t>(expected.begin() + 2, expected.begin() + 5));

  // The header, byte for byte.
  const std::string bytes = read_bytes(path);
  EXPECT_EQ(bytes.substr(0, 8), "LDTOKENS");
  uint32_t version = 0, w32 = 0;
  uint64_t count = 0, ndocs = 0;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&w32, bytes.data() + 12, 4);
  std::memcpy(&count, bytes.data() + 16, 8);
  std::memcpy(&ndocs, bytes.data() + 24, 8);
  EXPECT_EQ(version, 1u);
  EXPECT_EQ(w32, uint32_t(width));
  EXPECT_EQ(count, expected.size());
  EXPECT_EQ(ndocs, docs.size());
}

TEST(TokenShard, RoundTripWidth2) { round_trip(2, {{1, 2, 3}, {65535, 0}, {}, {7}}, 50256); }

TEST(TokenShard, RoundTripWidth4) { round_trip(4, {{70000, 1}, {151642, 2147483647}, {0}}, 151643); }

TEST(TokenShard, EmptyShardRoundTrips) {
  test::TempDir dir;
  ShardWriter w(dir / "e.bin", 2);
  w.finish();
  const ShardReader r = ShardReader::open(dir / "e.bin");
  EXPECT_EQ(r.size(), 0);
  EXPECT_EQ(r.documents(), 0);
}

TEST(TokenShard, IdTooWideForWidthIsAnErrorAndLeavesTheStreamClean) {
  test::TempDir dir;
  ShardWriter w(dir / "s.bin", 2);
  const std::vector<int32_t> good = {1, 2};
  const std::vector<int32_t> bad = {3, 65536};
  w.append_document(good, 0);
  const std::string msg = test::error_message([&] { w.append_document(bad, 0); });
  test::expect_mentions(msg, {"s.bin", "65536", "2-byte"});
  const std::string eos_msg = test::error_message([&] { w.append_document(good, 70000); });
  test::expect_mentions(eos_msg, {"70000"});
  const std::vector<int32_t> negative = {-1};
  test::expect_mentions(test::error_message([&] { w.append_document(negative, 0); }), {"-1"});
  w.finish();
  EXPECT_EQ(read_all(ShardReader::open(dir / "s.bin")), (std::vector<int32_t>{1, 2, 0}));
}

TEST(TokenShard, BadWidthIsAnError) {
  test::TempDir dir;
  test::expect_mentions(test::error_message([&] { ShardWriter w(dir / "s.bin", 3); }), {"s.bin", "width", "3"});
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(TokenShard, NothingAtPathWithoutFinish) {
  test::TempDir dir;
  {
    ShardWriter w(dir / "s.bin", 4);
    const std::vector<int32_t> ids = {1, 2, 3};
    w.append_document(ids, 0);
    EXPECT_FALSE(fs::exists(dir / "s.bin"));  // still under its temporary name
  }
  EXPECT_FALSE(fs::exists(dir / "s.bin"));
  EXPECT_TRUE(fs::is_empty(dir.path())) << "the temporary file was left behind";
}

TEST(TokenShard, FinishReplacesAnOlderShard) {
  test::TempDir dir;
  write_bytes(dir / "s.bin", "old contents");
  ShardWriter w(dir / "s.bin", 2);
  const std::vector<int32_t> ids = {5};
  w.append_document(ids, 9);
  EXPECT_EQ(read_bytes(dir / "s.bin"), "old contents");
  w.finish();
  EXPECT_EQ(read_all(ShardReader::open(dir / "s.bin")), (std::vector<int32_t>{5, 9}));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(TokenShard, HandMadeShardReads) {
  // Built without ShardWriter: the reader follows the documented layout, not the writer's habits.
  test::TempDir dir;
  std::string s = hand_made_shard(1, 4, 2, 1, 0);
  const uint32_t ids[2] = {100000, 7};
  s.append(reinterpret_cast<const char*>(ids), 8);
  write_bytes(dir / "h.bin", s);
  EXPECT_EQ(read_all(ShardReader::open(dir / "h.bin")), (std::vector<int32_t>{100000, 7}));
}

TEST(TokenShard, MissingFileIsAnErrorNamingIt) {
  test::TempDir dir;
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "nope.bin"); }), {"nope.bin", "cannot open"});
}

TEST(TokenShard, TruncatedHeaderIsAnError) {
  test::TempDir dir;
  write_bytes(dir / "t.bin", hand_made_shard(1, 2, 0, 0, 0).substr(0, 20));
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "t.bin"); }),
                        {"t.bin", "truncated", "20 bytes"});
  write_bytes(dir / "z.bin", "");
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "z.bin"); }), {"z.bin", "truncated"});
}

TEST(TokenShard, BadMagicIsAnError) {
  test::TempDir dir;
  std::string s = hand_made_shard(1, 2, 1, 1, 2);
  s[0] = 'X';
  write_bytes(dir / "m.bin", s);
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "m.bin"); }), {"m.bin", "magic"});
}

TEST(TokenShard, WrongVersionIsAnError) {
  test::TempDir dir;
  write_bytes(dir / "v.bin", hand_made_shard(2, 2, 1, 1, 2));
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "v.bin"); }), {"v.bin", "version 2"});
}

TEST(TokenShard, BadWidthInHeaderIsAnError) {
  test::TempDir dir;
  write_bytes(dir / "w.bin", hand_made_shard(1, 3, 1, 1, 3));
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "w.bin"); }), {"w.bin", "width", "3"});
}

TEST(TokenShard, SizeMismatchIsAnError) {
  test::TempDir dir;
  write_bytes(dir / "short.bin", hand_made_shard(1, 2, 10, 1, 19));  // one byte short of 10 ids
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "short.bin"); }),
                        {"short.bin", "size mismatch", "10 tokens", "51 bytes"});
  write_bytes(dir / "long.bin", hand_made_shard(1, 4, 1, 1, 8));  // one id too many
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "long.bin"); }),
                        {"long.bin", "size mismatch"});
  // A count so large that count * width overflows must not pass the check.
  write_bytes(dir / "huge.bin", hand_made_shard(1, 4, (uint64_t(1) << 62) + 1, 1, 4));
  test::expect_mentions(test::error_message([&] { ShardReader::open(dir / "huge.bin"); }),
                        {"huge.bin", "size mismatch"});
}

TEST(TokenShard, ReadOutsideTheShardIsAnError) {
  test::TempDir dir;
  ShardWriter w(dir / "s.bin", 2);
  const std::vector<int32_t> ids = {1, 2, 3};
  w.append_document(ids, 0);
  w.finish();
  const ShardReader r = ShardReader::open(dir / "s.bin");
  std::vector<int32_t> out(2);
  test::expect_mentions(test::error_message([&] { r.read(3, out); }), {"s.bin", "[3, 5)", "4 tokens"});
  test::expect_mentions(test::error_message([&] { r.read(-1, out); }), {"s.bin"});
}

}  // namespace
}  // namespace ld::data
