#pragma once
// Token shards: what `liandan data prepare` writes and the training loader memory-maps.
//
// File layout (little-endian):
//   bytes 0-7    magic "LDTOKENS"
//   bytes 8-11   u32 version (1)
//   bytes 12-15  u32 token width in bytes: 2 (uint16 ids, vocabularies up to 65536) or 4 (uint32)
//   bytes 16-23  u64 token count
//   bytes 24-31  u64 document count (documents are separated by the EOS id inside the stream)
//   bytes 32-    count ids of the token width
// A reader checks the magic, version, width and that the file size is exactly 32 + count * width.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

namespace ld::data {

inline constexpr char kShardMagic[8] = {'L', 'D', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr int64_t kShardHeaderBytes = 32;

// The narrowest width that holds every id of a vocabulary of this size.
int token_width_for(int64_t vocab_size);

// Streams ids into `path` through a temporary name; finish() writes the header and renames into
// place. Destroyed without finish(): the temporary file is removed and nothing appears at `path`.
class ShardWriter {
 public:
  ShardWriter(const std::filesystem::path& path, int token_width);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // One document's ids followed by `eos` (an id wider than the token width is an error naming it).
  void append_document(std::span<const int32_t> ids, int32_t eos);
  int64_t tokens() const { return tokens_; }
  int64_t documents() const { return documents_; }
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t tokens_ = 0, documents_ = 0;
};

// A memory-mapped shard; ids widened to int32 on read.
class ShardReader {
 public:
  static ShardReader open(const std::filesystem::path& path);  // errors name the file and the problem

  int64_t size() const { return count_; }  // tokens
  int64_t documents() const { return documents_; }
  int token_width() const { return width_; }
  const std::filesystem::path& path() const { return path_; }
  // ids [start, start + out.size()) into out; the range must lie inside the shard.
  void read(int64_t start, std::span<int32_t> out) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<void> map_;
  const unsigned char* data_ = nullptr;
  int64_t count_ = 0, documents_ = 0;
  int width_ = 2;
};

}  // namespace ld::data
