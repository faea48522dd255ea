// safetensors reader (mmap) and writer; see safetensors.hpp for the format.
#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace ld::io {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;  // keeps the header's tensor order

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

// --- dtype names

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypes[] = {{"F32", DType::f32}, {"BF16", DType::bf16}, {"F16", DType::f16}, {"I64", DType::i64},
                                 {"I32", DType::i32}, {"I8", DType::i8},     {"U8", DType::u8}};
constexpr const char* kSupported = "F32, BF16, F16, I64, I32, I8, U8";
// Valid safetensors dtypes that liandan has no tensor type for.
constexpr const char* kKnownUnsupported[] = {"F64", "BOOL", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2"};

const char* safetensors_name(DType t) {
  for (const DTypeName& d : kDTypes)
    if (d.dtype == t) return d.name;
  LD_FAIL("safetensors: no safetensors name for dtype ", dtype_name(t));
}

std::string describe(const fs::path& file, const std::string& tensor) {
  return detail::concat("safetensors ", file.string(), ": tensor '", tensor, "': ");
}

DType parse_dtype(const fs::path& file, const std::string& tensor, const std::string& name) {
  for (const DTypeName& d : kDTypes)
    if (name == d.name) return d.dtype;
  for (const char* n : kKnownUnsupported)
    LD_CHECK(name != n, describe(file, tensor), "dtype ", name, " is not supported (supported: ", kSupported, ")");
  LD_FAIL(describe(file, tensor), "unknown dtype '", name, "' (supported: ", kSupported, ")");
}

// --- the mapping

struct Mapping {
  std::shared_ptr<void> base;  // munmaps when the last owner goes
  size_t size = 0;
};

Mapping map_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  LD_CHECK(fd >= 0, "safetensors ", path.string(), ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    LD_FAIL("safetensors ", path.string(), ": not a regular file");
  }
  const size_t size = size_t(st.st_size);
  if (size < 8) {
    ::close(fd);
    LD_FAIL("safetensors ", path.string(), ": truncated: ", size, " bytes, shorter than the 8-byte header length");
  }
  // Private and writable: the file is never changed, but a caller that updates a loaded tensor in
  // place (an optimizer step on a weight) gets copy-on-write pages instead of a segfault.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  LD_CHECK(p != MAP_FAILED, "safetensors ", path.string(), ": mmap failed: ", std::strerror(map_errno));
  return {std::shared_ptr<void>(p, [size](void* q) { ::munmap(q, size); }), size};
}

// --- header validation

uint64_t read_u64_le(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

Shape parse_shape(const fs::path& file, const std::string& name, const Json& j) {
  LD_CHECK(j.is_array(), describe(file, name), "'shape' must be an array of integers");
  Shape shape;
  for (const Json& d : j) {
    LD_CHECK(d.is_number_integer(), describe(file, name), "shape entry ", d.dump(), " is not an integer");
    LD_CHECK(d.is_number_unsigned() || d.get<int64_t>() >= 0, describe(file, name), "negative shape entry ",
             d.get<int64_t>(), " in ", d.dump(), " of shape ", j.dump());
    LD_CHECK(d.get<uint64_t>() <= uint64_t(INT64_MAX), describe(file, name), "shape entry ", d.dump(), " too large");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// numel * dtype size, or nullopt on overflow.
std::optional<uint64_t> byte_size(const Shape& shape, DType dtype) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, uint64_t(d), &n)) return std::nullopt;
  return n;
}

TensorInfo parse_entry(const fs::path& file, const std::string& name, const Json& j, size_t data_size) {
  LD_CHECK(j.is_object(), describe(file, name), "entry is not an object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    LD_CHECK(j.contains(key), describe(file, name), "missing '", key, "'");
  LD_CHECK(j["dtype"].is_string(), describe(file, name), "'dtype' is not a string");
  TensorInfo info;
  info.name = name;
  info.dtype = parse_dtype(file, name, j["dtype"].get<std::string>());
  info.shape = parse_shape(file, name, j["shape"]);
  const Json& off = j["data_offsets"];
  LD_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
           describe(file, name), "'data_offsets' must be two non-negative integers, got ", off.dump());
  const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  LD_CHECK(begin <= end && end <= data_size, describe(file, name), "data_offsets [", begin, ", ", end,
           "] lie outside the data section of ", data_size, " bytes");
  const std::optional<uint64_t> expected = byte_size(info.shape, info.dtype);
  LD_CHECK(expected && *expected == end - begin, describe(file, name), "data_offsets [", begin, ", ", end, "] hold ",
           end - begin, " bytes but shape ", shape_str(info.shape), " of ", dtype_name(info.dtype), " needs ",
           expected ? std::to_string(*expected) : std::string("more than 2^64"));
  info.begin = size_t(begin);
  info.end = size_t(end);
  return info;
}

void check_no_overlap(const fs::path& file, std::vector<TensorInfo> tensors) {
  std::erase_if(tensors, [](const TensorInfo& t) { return t.begin == t.end; });  // empty tensors hold no bytes
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < tensors.size(); ++i) {
    const TensorInfo &a = tensors[i - 1], &b = tensors[i];
    LD_CHECK(b.begin >= a.end, "safetensors ", file.string(), ": tensors '", a.name, "' [", a.begin, ", ", a.end,
             ") and '", b.name, "' [", b.begin, ", ", b.end, ") overlap");
  }
}

std::map<std::string, std::string> parse_metadata(const fs::path& file, const Json& j) {
  LD_CHECK(j.is_object(), "safetensors ", file.string(), ": '__metadata__' is not an object of strings");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : j.items()) {
    LD_CHECK(value.is_string(), "safetensors ", file.string(), ": '__metadata__' entry '", key,
             "' is not a string: ", value.dump());
    out[key] = value.get<std::string>();
  }
  return out;
}

Json parse_header(const fs::path& file, const char* text, size_t size) {
  Json header;
  try {
    header = Json::parse(text, text + size);
  } catch (const Json::parse_error& e) {
    LD_FAIL("safetensors ", file.string(), ": the header is not valid JSON (", e.what(), ")");
  }
  LD_CHECK(header.is_object(), "safetensors ", file.string(), ": the header is not a JSON object but ",
           header.type_name());
  return header;
}

bool aligned_for(const void* p, DType dtype) { return reinterpret_cast<uintptr_t>(p) % dtype_size(dtype) == 0; }

// --- writing

void write_all(std::FILE* f, const void* data, size_t n, const fs::path& tmp) {
  LD_CHECK(n == 0 || std::fwrite(data, 1, n, f) == n, "safetensors: writing ", tmp.string(), " failed: ",
           std::strerror(errno));
}

Json header_for(const std::vector<std::pair<std::string, Tensor>>& tensors,
                const std::map<std::string, std::string>& metadata, const fs::path& path) {
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    LD_CHECK(!name.empty() && name != "__metadata__", "save_safetensors ", path.string(), ": invalid tensor name '",
             name, "'");
    LD_CHECK(seen.insert(name).second, "save_safetensors ", path.string(), ": tensor '", name, "' given twice");
    LD_CHECK(t.defined(), "save_safetensors ", path.string(), ": tensor '", name, "' is undefined");
    const size_t n = t.nbytes();
    header[name] = {{"dtype", safetensors_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  return header;
}

// The header text, padded with spaces to a multiple of 8 bytes as the reference writer does, so that
// the data section starts 8-aligned.
std::string header_text(const Json& header, const fs::path& path) {
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {  // names or metadata that are not valid UTF-8
    LD_FAIL("save_safetensors ", path.string(), ": cannot encode the header: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_file(const fs::path& tmp, const std::string& header, const std::vector<Tensor>& data) {
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  LD_CHECK(f, "save_safetensors: cannot create ", tmp.string(), ": ", std::strerror(errno));
  try {
    const uint64_t n = header.size();
    write_all(f, &n, 8, tmp);
    write_all(f, header.data(), header.size(), tmp);
    for (const Tensor& t : data) write_all(f, t.raw(), t.nbytes(), tmp);
    LD_CHECK(std::fflush(f) == 0 && ::fsync(fileno(f)) == 0, "safetensors: writing ", tmp.string(),
             " failed: ", std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    throw;
  }
  LD_CHECK(std::fclose(f) == 0, "safetensors: closing ", tmp.string(), " failed: ", std::strerror(errno));
}

// --- checkpoints

Tensor convert_floating(const Tensor& t, std::optional<DType> as) {
  // Only floating tensors change dtype: integer buffers (position ids) keep theirs.
  return as && is_floating(t.dtype()) ? t.to(*as) : t;
}

std::map<std::string, Tensor> load_sharded(const fs::path& dir, const fs::path& index_path, std::optional<DType> as) {
  std::ifstream in(index_path);
  LD_CHECK(in, "checkpoint ", index_path.string(), ": cannot open");
  Json index;
  try {
    index = Json::parse(in);
  } catch (const Json::parse_error& e) {
    LD_FAIL("checkpoint ", index_path.string(), ": not valid JSON (", e.what(), ")");
  }
  LD_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(), "checkpoint ",
           index_path.string(), ": no 'weight_map' object");
  std::map<std::string, std::vector<std::string>> by_shard;  // so that each shard is opened once
  for (const auto& [name, shard] : index["weight_map"].items()) {
    LD_CHECK(shard.is_string(), "checkpoint ", index_path.string(), ": weight_map entry '", name,
             "' is not a file name");
    by_shard[shard.get<std::string>()].push_back(name);
  }
  std::map<std::string, Tensor> out;
  for (const auto& [shard, names] : by_shard) {
    const fs::path shard_path = dir / shard;
    LD_CHECK(fs::is_regular_file(shard_path), "checkpoint ", index_path.string(), ": shard ", shard,
             " (holding '", names.front(), "') is missing");
    const SafetensorsFile file = SafetensorsFile::open(shard_path);
    for (const std::string& name : names) {
      LD_CHECK(file.contains(name), "checkpoint ", index_path.string(), ": weight_map puts '", name, "' in ", shard,
               ", which has no such tensor");
      out[name] = convert_floating(file.get(name), as);
    }
  }
  return out;
}

}  // namespace

// --- SafetensorsFile

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  Mapping map = map_file(path);
  const char* base = static_cast<const char*>(map.base.get());
  const uint64_t header_size = read_u64_le(base);
  LD_CHECK(header_size <= map.size - 8, "safetensors ", path.string(), ": header length ", header_size,
           " goes beyond the end of the file (", map.size, " bytes): truncated or not a safetensors file");
  const Json header = parse_header(path, base + 8, size_t(header_size));

  SafetensorsFile file;
  file.path_ = path;
  file.data_ = base + 8 + header_size;
  const size_t data_size = map.size - 8 - size_t(header_size);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      file.metadata_ = parse_metadata(path, value);
      continue;
    }
    file.index_[key] = file.tensors_.size();
    file.tensors_.push_back(parse_entry(path, key, value, data_size));
  }
  check_no_overlap(path, file.tensors_);
  file.map_ = std::move(map.base);
  return file;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

Tensor SafetensorsFile::get(const std::string& name, std::optional<DType> as) const {
  const auto it = index_.find(name);
  LD_CHECK(it != index_.end(), "safetensors ", path_.string(), ": no tensor named '", name, "' (the file holds ",
           tensors_.size(), " tensors)");
  const TensorInfo& info = tensors_[it->second];
  void* data = const_cast<char*>(data_ + info.begin);  // private mapping: writes never reach the file
  Tensor stored;
  if (aligned_for(data, info.dtype) && info.begin != info.end) {
    stored = from_blob(data, info.shape, info.dtype, map_);
  } else {
    // The format does not align tensors; our kernels assume natural alignment, so copy.
    stored = empty(info.shape, info.dtype);
    if (info.end > info.begin) std::memcpy(stored.raw(), data, info.end - info.begin);
  }
  return as ? stored.to(*as) : stored;
}

// --- writing

void save_safetensors(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Everything that can be checked is checked before a byte is written.
  const std::string header = header_text(header_for(tensors, metadata, path), path);
  std::vector<Tensor> data;
  data.reserve(tensors.size());
  for (const auto& [name, t] : tensors) data.push_back(t.contiguous().to(kCPU));

  const fs::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  try {
    write_file(tmp, header, data);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    LD_CHECK(!ec, "save_safetensors: cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

// --- checkpoints

std::map<std::string, Tensor> load_checkpoint(const fs::path& dir, std::optional<DType> as) {
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  // transformers prefers the single file when both are present; so do we.
  if (fs::exists(single)) {
    const SafetensorsFile file = SafetensorsFile::open(single);
    std::map<std::string, Tensor> out;
    for (const TensorInfo& t : file.tensors()) out[t.name] = convert_floating(file.get(t.name), as);
    return out;
  }
  LD_CHECK(fs::exists(index), "checkpoint ", dir.string(),
           ": neither model.safetensors nor model.safetensors.index.json is there");
  return load_sharded(dir, index, as);
}

}  // namespace ld::io
