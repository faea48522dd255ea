#include "data/readers.hpp"

#include <optional>

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"

namespace ld::data {

namespace fs = std::filesystem;

InputFormat parse_input_format(const std::string& name) {
  if (name == "auto") return InputFormat::automatic;
  if (name == "text") return InputFormat::text;
  if (name == "jsonl") return InputFormat::jsonl;
  if (name == "fortune") return InputFormat::fortune;
  LD_FAIL("--format: expected auto, text, jsonl or fortune, got '", name, "'");
}

namespace {

// Decompressed bytes of a file, in chunks.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual size_t read(char* buf, size_t n) = 0;  // 0 at the end
};

class PlainSource : public ByteSource {
 public:
  explicit PlainSource(const fs::path& path) : path_(path), f_(std::fopen(path.c_str(), "rb")) {
    LD_CHECK(f_ != nullptr, path.string(), ": cannot open for reading");
  }
  ~PlainSource() override { std::fclose(f_); }
  size_t read(char* buf, size_t n) override {
    size_t got = std::fread(buf, 1, n, f_);
    LD_CHECK(got > 0 || !std::ferror(f_), path_.string(), ": read error");
    return got;
  }

 private:
  fs::path path_;
  std::FILE* f_;
};

class GzipSource : public ByteSource {
 public:
  explicit GzipSource(const fs::path& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    LD_CHECK(f_ != nullptr, path.string(), ": cannot open for reading");
  }
  ~GzipSource() override { gzclose(f_); }
  size_t read(char* buf, size_t n) override {
    int got = gzread(f_, buf, static_cast<unsigned>(n));
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f_, &err);
      LD_FAIL(path_.string(), ": not a valid gzip file (", msg, ")");
    }
    return static_cast<size_t>(got);
  }

 private:
  fs::path path_;
  gzFile f_;
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(const fs::path& path) : file_(path), path_(path), in_(ZSTD_DStreamInSize()) {
    stream_ = ZSTD_createDStream();
    ZSTD_initDStream(stream_);
  }
  ~ZstdSource() override { ZSTD_freeDStream(stream_); }
  size_t read(char* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0) {
      if (input_.pos == input_.size) {
        size_t got = file_.read(in_.data(), in_.size());
        if (got == 0) {
          LD_CHECK(last_ret_ == 0, path_.string(), ": truncated zstd stream");
          return 0;
        }
        input_ = {in_.data(), got, 0};
      }
      last_ret_ = ZSTD_decompressStream(stream_, &out, &input_);
      LD_CHECK(!ZSTD_isError(last_ret_), path_.string(), ": not a valid zstd file (", ZSTD_getErrorName(last_ret_), ")");
    }
    return out.pos;
  }

 private:
  PlainSource file_;
  fs::path path_;
  std::vector<char> in_;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  ZSTD_DStream* stream_ = nullptr;
  size_t last_ret_ = 0;
};

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

std::unique_ptr<ByteSource> open_source(const fs::path& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".gz") return std::make_unique<GzipSource>(path);
  if (ext == ".zst" || ext == ".zstd") return std::make_unique<ZstdSource>(path);
  return std::make_unique<PlainSource>(path);
}

// Lines of a ByteSource without their "\n" (and a "\r" before it).
class LineReader {
 public:
  explicit LineReader(ByteSource& src) : src_(src), buf_(1 << 16) {}
  bool next(std::string& line) {
    line.clear();
    for (;;) {
      if (pos_ == len_) {
        len_ = src_.read(buf_.data(), buf_.size());
        pos_ = 0;
        bytes_ += len_;
        if (len_ == 0) return !line.empty() || pending_;
        pending_ = true;
      }
      const char* start = buf_.data() + pos_;
      const void* nl = std::memchr(start, '\n', len_ - pos_);
      if (nl == nullptr) {
        line.append(start, len_ - pos_);
        pos_ = len_;
        continue;
      }
      const size_t n = static_cast<size_t>(static_cast<const char*>(nl) - start);
      line.append(start, n);
      pos_ += n + 1;
      pending_ = false;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    }
  }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSource& src_;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
  uint64_t bytes_ = 0;
  bool pending_ = false;  // bytes read since the last newline
};

InputFormat detect_format(const fs::path& file) {
  fs::path name = file;
  const std::string ext = lower_extension(name);
  if (ext == ".gz" || ext == ".zst" || ext == ".zstd") name = name.stem();
  const std::string inner = lower_extension(name);
  if (inner == ".jsonl" || inner == ".json" || inner == ".ndjson") return InputFormat::jsonl;
  fs::path dat = file;
  dat += ".dat";
  std::error_code ec;
  if (fs::is_regular_file(dat, ec)) return InputFormat::fortune;
  if (inner == ".u8") {  // fortune's UTF-8 alias NAME.u8 of NAME (with NAME.dat)
    fs::path base = name;
    base.replace_extension(".dat");
    if (fs::is_regular_file(base, ec)) return InputFormat::fortune;
  }
  return InputFormat::text;
}

std::string where(const fs::path& file, uint64_t line) { return file.string() + ":" + std::to_string(line); }

// The text field of one JSONL line, or the reason it has none.
std::optional<std::string> jsonl_text(const std::string& line, const std::string& field, std::string& why) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    why = "malformed JSON";
  } else if (!j.is_object()) {
    why = std::string("expected a JSON object, got ") + j.type_name();
  } else if (auto it = j.find(field); it == j.end()) {
    why = "no \"" + field + "\" field (choose the field with --text-field)";
  } else if (!it->is_string()) {
    why = "field \"" + field + "\" is a " + it->type_name() + ", expected a string";
  } else {
    return it->get<std::string>();
  }
  return std::nullopt;
}

void read_jsonl(const fs::path& file, LineReader& lines, const ReaderOptions& options,
                const std::function<void(Document&&)>& on_document) {
  std::string line, why;
  uint64_t n = 0;
  while (lines.next(line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::optional<std::string> text = jsonl_text(line, options.text_field, why);
    if (text) {
      on_document({std::move(*text), where(file, n)});
      continue;
    }
    LD_CHECK(options.on_bad_line, where(file, n), ": ", why, " (--skip-bad-lines skips such lines)");
    options.on_bad_line(where(file, n) + ": " + why);
  }
}

// Blocks of lines separated by `is_separator` lines; a block of only blank lines is no document.
template <typename IsSeparator>
void read_blocks(const fs::path& file, LineReader& lines, IsSeparator is_separator,
                 const std::function<void(Document&&)>& on_document) {
  std::string line, doc;
  uint64_t n = 0, first = 0;
  auto flush = [&] {
    if (doc.find_first_not_of(" \t\r\n") != std::string::npos) on_document({doc, where(file, first)});
    doc.clear();
  };
  while (lines.next(line)) {
    ++n;
    if (is_separator(line)) {
      flush();
      continue;
    }
    if (doc.empty()) first = n;
    if (!doc.empty()) doc += '\n';
    doc += line;
  }
  flush();
}

void read_lines(const fs::path& file, LineReader& lines, const std::function<void(Document&&)>& on_document) {
  std::string line;
  uint64_t n = 0;
  while (lines.next(line)) {
    ++n;
    if (line.find_first_not_of(" \t\r\f\v") != std::string::npos) on_document({line, where(file, n)});
  }
}

bool is_blank(const std::string& line) { return line.find_first_not_of(" \t\r\f\v") == std::string::npos; }

}  // namespace

std::vector<fs::path> list_input_files(const std::vector<fs::path>& inputs) {
  std::vector<fs::path> files;
  std::set<fs::path> seen;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(p, ec);
    if (ec) canonical = p;
    if (seen.insert(canonical).second) files.push_back(p);
  };
  for (const fs::path& input : inputs) {
    std::error_code ec;
    LD_CHECK(fs::exists(input, ec), input.string(), ": no such file or folder");
    if (!fs::is_directory(input, ec)) {
      add(input);
      continue;
    }
    std::vector<fs::path> found;
    for (const auto& entry : fs::recursive_directory_iterator(input, fs::directory_options::follow_directory_symlink)) {
      if (!entry.is_regular_file()) continue;
      const fs::path& p = entry.path();
      if (p.filename().string().starts_with(".")) continue;  // hidden files, editors' temporaries
      if (lower_extension(p) == ".dat") {                  // fortune's index of NAME
        fs::path base = p;
        base.replace_extension();
        if (fs::exists(base, ec)) continue;
      }
      found.push_back(p);
    }
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found) add(p);
  }
  return files;
}

uint64_t read_documents(const fs::path& file, const ReaderOptions& options,
                        const std::function<void(Document&&)>& on_document) {
  std::error_code ec;
  LD_CHECK(fs::is_regular_file(file, ec), file.string(), ": not a readable file");
  auto source = open_source(file);
  LineReader lines(*source);
  InputFormat format = options.format == InputFormat::automatic ? detect_format(file) : options.format;
  switch (format) {
    case InputFormat::jsonl:
      read_jsonl(file, lines, options, on_document);
      break;
    case InputFormat::fortune:
      read_blocks(file, lines, [](const std::string& l) { return l == "%"; }, on_document);
      break;
    default:
      if (options.doc_per_line)
        read_lines(file, lines, on_document);
      else
        read_blocks(file, lines, is_blank, on_document);
  }
  return lines.bytes();
}

}  // namespace ld::data
