// Token shards: streamed writer (temporary name, header last, rename) and mmap reader. See
// token_shard.hpp for the layout.
#include "data/token_shard.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace ld::data {

namespace fs = std::filesystem;

static_assert(std::endian::native == std::endian::little, "token shards are read by memcpy: little-endian hosts only");

namespace {

uint64_t max_id_for_width(int width) { return width == 2 ? 0xFFFFull : 0xFFFFFFFFull; }

void check_width(int width, const fs::path& path) {
  LD_CHECK(width == 2 || width == 4, "token shard ", path.string(), ": token width must be 2 or 4 bytes, got ", width);
}

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t width;
  uint64_t count;
  uint64_t documents;
};
static_assert(sizeof(Header) == kShardHeaderBytes);

}  // namespace

int token_width_for(int64_t vocab_size) {
  LD_CHECK(vocab_size > 0, "token shard: vocabulary size must be positive, got ", vocab_size);
  LD_CHECK(uint64_t(vocab_size) <= max_id_for_width(4) + 1, "token shard: vocabulary size ", vocab_size,
           " does not fit 32-bit token ids");
  return uint64_t(vocab_size) <= max_id_for_width(2) + 1 ? 2 : 4;
}

// --- writer

struct ShardWriter::Impl {
  fs::path path, tmp;
  int width = 2;
  std::FILE* file = nullptr;
  bool finished = false;
  std::vector<unsigned char> buffer;  // one document's bytes, written with a single fwrite

  void write(const void* p, size_t n) {
    LD_CHECK(std::fwrite(p, 1, n, file) == n, "token shard ", tmp.string(), ": write failed: ", std::strerror(errno));
  }
  void close_and_remove() {
    if (file) std::fclose(file);
    file = nullptr;
    std::error_code ec;
    fs::remove(tmp, ec);
  }
};

ShardWriter::ShardWriter(const fs::path& path, int token_width) : impl_(std::make_unique<Impl>()) {
  check_width(token_width, path);
  impl_->path = path;
  impl_->width = token_width;
  impl_->tmp = path;
  impl_->tmp += ".tmp-" + std::to_string(::getpid());
  impl_->file = std::fopen(impl_->tmp.c_str(), "wb");
  LD_CHECK(impl_->file, "token shard ", impl_->tmp.string(), ": cannot create: ", std::strerror(errno));
  // A zeroed header holds the place; finish() writes the real one, so a half-written file never
  // carries a valid magic.
  try {
    const Header blank{};
    impl_->write(&blank, sizeof blank);
  } catch (...) {
    impl_->close_and_remove();
    throw;
  }
}

ShardWriter::~ShardWriter() {
  if (impl_ && !impl_->finished) impl_->close_and_remove();
}

void ShardWriter::append_document(std::span<const int32_t> ids, int32_t eos) {
  Impl& im = *impl_;
  LD_CHECK(!im.finished, "token shard ", im.path.string(), ": append after finish()");
  const uint64_t max_id = max_id_for_width(im.width);
  auto check_id = [&](int32_t id) {
    LD_CHECK(id >= 0 && uint64_t(id) <= max_id, "token shard ", im.path.string(), ": token id ", id, " does not fit a ",
             im.width, "-byte token width (ids 0..", max_id, ")");
  };
  // Check the whole document first: a rejected document leaves nothing behind in the stream.
  for (int32_t id : ids) check_id(id);
  check_id(eos);
  im.buffer.resize((ids.size() + 1) * size_t(im.width));
  unsigned char* out = im.buffer.data();
  auto put = [&](int32_t id) {
    if (im.width == 2) {
      const uint16_t v = uint16_t(id);
      std::memcpy(out, &v, 2);
    } else {
      const uint32_t v = uint32_t(id);
      std::memcpy(out, &v, 4);
    }
    out += im.width;
  };
  for (int32_t id : ids) put(id);
  put(eos);
  im.write(im.buffer.data(), im.buffer.size());
  tokens_ += int64_t(ids.size()) + 1;
  documents_ += 1;
}

void ShardWriter::finish() {
  Impl& im = *impl_;
  LD_CHECK(!im.finished, "token shard ", im.path.string(), ": finish() called twice");
  try {
    Header h{};
    std::memcpy(h.magic, kShardMagic, 8);
    h.version = kShardVersion;
    h.width = uint32_t(im.width);
    h.count = uint64_t(tokens_);
    h.documents = uint64_t(documents_);
    LD_CHECK(std::fseek(im.file, 0, SEEK_SET) == 0, "token shard ", im.tmp.string(),
             ": seek failed: ", std::strerror(errno));
    im.write(&h, sizeof h);
    LD_CHECK(std::fflush(im.file) == 0 && ::fsync(fileno(im.file)) == 0, "token shard ", im.tmp.string(),
             ": write failed (disk full?): ", std::strerror(errno));
    const int rc = std::fclose(im.file);
    im.file = nullptr;
    LD_CHECK(rc == 0, "token shard ", im.tmp.string(), ": close failed: ", std::strerror(errno));
    std::error_code ec;
    fs::rename(im.tmp, im.path, ec);
    LD_CHECK(!ec, "token shard ", im.path.string(), ": cannot rename the temporary file into place (", ec.message(),
             ")");
  } catch (...) {
    im.close_and_remove();
    im.finished = true;  // nothing more to clean up
    throw;
  }
  im.finished = true;
}

// --- reader

ShardReader ShardReader::open(const fs::path& path) {
  const std::string name = "token shard " + path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LD_CHECK(fd >= 0, name, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    LD_FAIL(name, ": not a regular file");
  }
  const size_t size = size_t(st.st_size);
  if (size < size_t(kShardHeaderBytes)) {
    ::close(fd);
    LD_FAIL(name, ": truncated: ", size, " bytes, shorter than the ", kShardHeaderBytes, "-byte header");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  LD_CHECK(p != MAP_FAILED, name, ": mmap failed: ", std::strerror(map_errno));

  ShardReader r;
  r.path_ = path;
  r.map_ = std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); });
  r.data_ = static_cast<const unsigned char*>(p) + kShardHeaderBytes;

  Header h;
  std::memcpy(&h, p, sizeof h);
  LD_CHECK(std::memcmp(h.magic, kShardMagic, 8) == 0, name, ": not a token shard (bad magic; expected \"LDTOKENS\")");
  LD_CHECK(h.version == kShardVersion, name, ": unsupported version ", h.version, " (this build reads version ",
           kShardVersion, ")");
  LD_CHECK(h.width == 2 || h.width == 4, name, ": token width must be 2 or 4 bytes, got ", h.width);
  const uint64_t max_count = (uint64_t(size) - kShardHeaderBytes) / h.width;
  LD_CHECK(h.count <= max_count && uint64_t(kShardHeaderBytes) + h.count * h.width == size, name,
           ": size mismatch: ", "header says ", h.count, " tokens of ", h.width, " bytes (",
           kShardHeaderBytes + h.count * h.width, " bytes with the header), file has ", size,
           " bytes (truncated or corrupt)");
  r.count_ = int64_t(h.count);
  r.documents_ = int64_t(h.documents);
  r.width_ = int(h.width);
  return r;
}

void ShardReader::read(int64_t start, std::span<int32_t> out) const {
  const int64_t n = int64_t(out.size());
  LD_CHECK(start >= 0 && n <= count_ && start <= count_ - n, "token shard ", path_.string(), ": read of ids [", start,
           ", ", start + n, ") outside the shard's ", count_, " tokens");
  const unsigned char* src = data_ + start * width_;
  if (width_ == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      out[size_t(i)] = int32_t(v);
    }
  } else {
    // Ids are at most 32 bits wide; one above INT32_MAX cannot come from the writer (it takes int32).
    for (int64_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, src + 4 * i, 4);
      out[size_t(i)] = int32_t(v);
    }
  }
}

}  // namespace ld::data
