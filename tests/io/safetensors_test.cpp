// safetensors reader/writer: round trips, files written and read by an independent Python writer
// and reader (Debian's torch through LIANDAN_PYTHON), the zero-copy mapping, sharded checkpoints and
// every validation error.
#include "io/safetensors.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/rng.hpp"
#include "test_util.hpp"

namespace ld::io {
namespace {

namespace fs = std::filesystem;
using Named = std::vector<std::pair<std::string, Tensor>>;
using test::error_message;
using test::expect_mentions;
using test::TempDir;

constexpr const char* kPython = LIANDAN_PYTHON;

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

std::string bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  if (c.nbytes() == 0) return {};
  return std::string(static_cast<const char*>(c.raw()), c.nbytes());
}

std::vector<std::string> dir_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A 16-bit tensor from raw bit patterns (NaN payloads, infinities, subnormals, -0).
Tensor from_bits(std::vector<uint16_t> bits, DType dtype) {
  auto owner = std::make_shared<std::vector<uint16_t>>(std::move(bits));
  return from_blob(owner->data(), {int64_t(owner->size())}, dtype, owner);
}

// One tensor of every dtype, odd values, views with strides and offsets, an empty and a 0-d tensor.
Named sample_tensors() {
  Generator gen(7);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  Named out;
  out.emplace_back("w.f32", randn({3, 5}, &gen));
  out.emplace_back("special.f32", from_vector<float>({nan, -inf, inf, -0.0f, 1e-45f, 3.4e38f}, {6}));
  out.emplace_back("w.bf16", randn({4, 3}, &gen).to(DType::bf16));
  out.emplace_back("bits.bf16", from_bits({0x7fc1, 0xff80, 0x8000, 0x0001, 0x3f80}, DType::bf16));
  out.emplace_back("w.f16", randn({2, 3, 2}, &gen).to(DType::f16));
  out.emplace_back("bits.f16", from_bits({0x7e01, 0xfc00, 0x8000, 0x0001, 0x3c00, 0x7bff}, DType::f16));
  out.emplace_back("ids.i64", from_vector<int64_t>({std::numeric_limits<int64_t>::min(), -1, 0, 1LL << 40}, {2, 2}));
  out.emplace_back("ids.i32", from_vector<int32_t>({std::numeric_limits<int32_t>::min(), 5, 2147483647}, {3}));
  out.emplace_back("q.i8", from_vector<int8_t>({-128, -1, 0, 127, 3}, {5}));
  out.emplace_back("b.u8", from_vector<uint8_t>({0, 1, 255}, {3}));  // 3 bytes: the next tensor starts unaligned
  out.emplace_back("transposed", randn({3, 4}, &gen).transpose(0, 1));
  out.emplace_back("narrowed", randn({5, 6}, &gen).narrow(0, 1, 3));
  out.emplace_back("transposed.bf16", randn({2, 5}, &gen).to(DType::bf16).transpose(0, 1));
  out.emplace_back("empty", empty({0, 3}));
  out.emplace_back("scalar", scalar_tensor(2.5));
  return out;
}

const std::map<std::string, std::string> kMetadata = {{"format", "pt"}, {"note", "ünïcode ok"}};

// --- running Python

std::string quoted(const fs::path& p) {
  std::ostringstream os;
  os << '\'' << p.string() << '\'';
  return os.str();
}

bool torch_importable() {
  static const bool importable =
      std::system((std::string(kPython) + " -c 'import torch, numpy' >/dev/null 2>&1").c_str()) == 0;
  return importable;
}
#define ASSERT_TORCH_AVAILABLE()                                                               \
  ASSERT_TRUE(torch_importable()) << kPython << " cannot import torch and numpy: install them " \
                                  << "with `apt-get install python3-torch python3-numpy`"

// Runs `script` (written to dir) with `args`; returns its standard output, failing on a non-zero exit.
std::string run_python(const TempDir& dir, const std::string& script, const std::string& args) {
  const fs::path file = dir / "script.py";
  write_bytes(file, script);
  const std::string command = std::string("OMP_NUM_THREADS=1 ") + kPython + " " + quoted(file) + " " + args;
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  if (!pipe) return {};
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  EXPECT_EQ(::pclose(pipe), 0) << "failed: " << command << "\noutput:\n" << out;
  return out;
}

// Lines "name v1 v2 ..." -> name -> values (as printed).
std::map<std::string, std::vector<std::string>> parse_lines(const std::string& text) {
  std::map<std::string, std::vector<std::string>> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string name, v;
    if (!(ls >> name)) continue;
    std::vector<std::string>& values = out[name];
    while (ls >> v) values.push_back(v);
  }
  return out;
}

// Compares a tensor's values with printed ones: hex doubles (float.hex) for floats, decimals for ints.
void expect_values(const std::string& name, const Tensor& t, const std::vector<std::string>& printed) {
  ASSERT_EQ(size_t(t.numel()), printed.size()) << name;
  if (is_floating(t.dtype())) {
    const std::vector<float> got = t.to(DType::f32).to_vector<float>();
    for (size_t i = 0; i < got.size(); ++i) {
      const double want = std::strtod(printed[i].c_str(), nullptr);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(got[i])) << name << "[" << i << "]";
      else
        EXPECT_EQ(double(got[i]), want) << name << "[" << i << "] printed " << printed[i];
    }
  } else {
    const std::vector<int64_t> got = t.to(DType::i64).to_vector<int64_t>();
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], std::stoll(printed[i])) << name << "[" << i << "]";
  }
}

// --- /proc/self/maps: where the mappings of a file lie in this process

std::vector<std::pair<uintptr_t, uintptr_t>> mappings_of(const fs::path& file) {
  const std::string target = fs::weakly_canonical(fs::absolute(file)).string();
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find(target) == std::string::npos) continue;  // also matches "<path> (deleted)"
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) out.emplace_back(lo, hi);
  }
  return out;
}

bool inside_mapping_of(const void* p, const fs::path& file) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (const auto& [lo, hi] : mappings_of(file))
    if (a >= lo && a < hi) return true;
  return false;
}

// --- hand-made files for the error cases

std::string le64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }

void write_raw(const fs::path& p, const std::string& header, size_t data_bytes) {
  write_bytes(p, le64(header.size()) + header + std::string(data_bytes, '\0'));
}

std::string open_error(const fs::path& p) {
  return error_message([&] { SafetensorsFile::open(p); });
}

// ================================================================ round trips

TEST(Safetensors, RoundTripEveryDtypeBitIdentical) {
  TempDir dir;
  const Named tensors = sample_tensors();
  save_safetensors(dir / "a.safetensors", tensors, kMetadata);
  const SafetensorsFile f = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_EQ(f.metadata(), kMetadata);
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, want] = tensors[i];
    EXPECT_EQ(f.tensors()[i].name, name) << "header order";
    ASSERT_TRUE(f.contains(name));
    const Tensor got = f.get(name);
    EXPECT_EQ(got.dtype(), want.dtype()) << name;
    EXPECT_EQ(got.shape(), want.shape()) << name;
    EXPECT_EQ(bytes_of(got), bytes_of(want)) << name;
  }
  EXPECT_FALSE(f.contains("nope"));
}

TEST(Safetensors, ConvertsOnGet) {
  TempDir dir;
  const Named tensors = sample_tensors();
  save_safetensors(dir / "a.safetensors", tensors);
  const SafetensorsFile f = SafetensorsFile::open(dir / "a.safetensors");
  // bf16/f16 -> f32 is exact; f32 -> bf16 rounds like Tensor::to.
  for (const char* name : {"w.bf16", "w.f16", "bits.f16"}) {
    const Tensor got = f.get(name, DType::f32);
    EXPECT_EQ(got.dtype(), DType::f32);
    EXPECT_EQ(bytes_of(got), bytes_of(f.get(name).to(DType::f32))) << name;
  }
  const Tensor w = tensors[0].second;
  EXPECT_EQ(bytes_of(f.get("w.f32", DType::bf16)), bytes_of(w.to(DType::bf16)));
  EXPECT_EQ(bytes_of(f.get("w.f32", DType::f16)), bytes_of(w.to(DType::f16)));
}

TEST(Safetensors, SaveLoadSaveIsByteIdentical) {
  TempDir dir;
  save_safetensors(dir / "a.safetensors", sample_tensors(), kMetadata);
  const SafetensorsFile f = SafetensorsFile::open(dir / "a.safetensors");
  Named again;
  for (const TensorInfo& t : f.tensors()) again.emplace_back(t.name, f.get(t.name));
  save_safetensors(dir / "b.safetensors", again, f.metadata());
  const std::string a = read_bytes(dir / "a.safetensors"), b = read_bytes(dir / "b.safetensors");
  ASSERT_GT(a.size(), 8u);
  EXPECT_TRUE(a == b) << "sizes " << a.size() << " and " << b.size();
  // The header is padded with spaces to a multiple of 8 bytes, metadata first, like the reference writer.
  uint64_t n;
  std::memcpy(&n, a.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(a.substr(8, 16), "{\"__metadata__\":");
  EXPECT_EQ(a.find_last_not_of(' ', 8 + n - 1), a.rfind('}', 8 + n - 1));
}

TEST(Safetensors, EmptyListAndNoMetadata) {
  TempDir dir;
  save_safetensors(dir / "e.safetensors", {});
  const SafetensorsFile f = SafetensorsFile::open(dir / "e.safetensors");
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(read_bytes(dir / "e.safetensors"), le64(8) + "{}      ");
}

// ================================================================ against Python

// Writes safetensors by hand (struct + json, no safetensors package), with the data section starting
// at an odd address and tensors at unaligned offsets; prints every value exactly.
const char* kPythonWriter = R"PY(
import json, struct, sys, torch
torch.manual_seed(0)
ts = [
    ("odd.u8", torch.tensor([1, 2, 3], dtype=torch.uint8)),
    ("w.f32", torch.randn(3, 4)),
    ("w.bf16", torch.randn(5, 7).to(torch.bfloat16)),
    ("w.f16", torch.randn(2, 3, 4).to(torch.float16)),
    ("range.bf16", torch.tensor([1e30, -3e-30, float("inf"), -0.0, 1e-40]).to(torch.bfloat16)),
    ("range.f16", torch.tensor([65504.0, -6e-8, float("-inf"), 1e-5]).to(torch.float16)),
    ("ids.i64", torch.tensor([-(2**62), -1, 0, 7, 2**62 + 3], dtype=torch.int64)),
    ("ids.i32", torch.tensor([-(2**31), 5, 2**31 - 1], dtype=torch.int32)),
    ("q.i8", torch.tensor([-128, -1, 0, 127], dtype=torch.int8)),
    ("empty", torch.zeros(0, 3)),
    ("scalar", torch.tensor(1.5)),
]
names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64",
         torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8"}
header = {"__metadata__": {"format": "pt", "writer": "python"}}
data = b""
for name, t in ts:
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
h = json.dumps(header).encode()
h += b" " * ((3 - (8 + len(h))) % 8)  # the data section starts at 3 mod 8: f32 data is misaligned
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)
for name, t in ts:
    flat = t.reshape(-1)
    if t.dtype.is_floating_point:
        vals = [float(x).hex() for x in flat.double().tolist()]
    else:
        vals = [str(int(x)) for x in flat.tolist()]
    print(name, *vals)
)PY";

TEST(Safetensors, ReadsAFileWrittenByPython) {
  ASSERT_TORCH_AVAILABLE();
  TempDir dir;
  const fs::path file = dir / "py.safetensors";
  const auto printed = parse_lines(run_python(dir, kPythonWriter, quoted(file)));
  ASSERT_EQ(printed.size(), 11u);
  const SafetensorsFile f = SafetensorsFile::open(file);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"writer", "python"}}));
  ASSERT_EQ(f.tensors().size(), printed.size());
  EXPECT_EQ(f.get("w.bf16").dtype(), DType::bf16);
  EXPECT_EQ(f.get("w.f16").dtype(), DType::f16);
  EXPECT_EQ(f.get("ids.i64").dtype(), DType::i64);
  EXPECT_EQ(f.get("w.f32").shape(), (Shape{3, 4}));
  EXPECT_EQ(f.get("empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(f.get("scalar").shape(), Shape{});
  for (const auto& [name, values] : printed) {
    const Tensor stored = f.get(name);
    const Tensor t = is_floating(stored.dtype()) ? f.get(name, DType::f32) : stored;
    if (is_floating(stored.dtype())) {
      EXPECT_EQ(t.dtype(), DType::f32) << name;
    }
    expect_values(name, t, values);
  }
}

// Reads a file liandan wrote: parses the header with json and the data with torch.frombuffer, checks
// the layout the format requires, and prints every value exactly.
const char* kPythonReader = R"PY(
import json, struct, sys, torch
buf = bytearray(open(sys.argv[1], "rb").read())
(n,) = struct.unpack("<Q", bytes(buf[:8]))
assert (8 + n) % 8 == 0, "header not padded to 8 bytes"
header = json.loads(bytes(buf[8 : 8 + n]).decode("utf-8"))
meta = header.pop("__metadata__", {})
print("__metadata__", *[f"{k}={v}" for k, v in sorted(meta.items())])
dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64,
          "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8}
end = 0
for name, e in header.items():
    begin, stop = e["data_offsets"]
    assert begin == end, f"{name}: data not contiguous"
    end = stop
    dt = dtypes[e["dtype"]]
    numel = 1
    for d in e["shape"]:
        numel *= d
    assert stop - begin == numel * torch.tensor([], dtype=dt).element_size(), name
    if numel == 0:
        t = torch.empty(e["shape"], dtype=dt)
    else:
        t = torch.frombuffer(buf, dtype=dt, count=numel, offset=8 + n + begin).reshape(e["shape"])
    flat = t.reshape(-1)
    if t.dtype.is_floating_point:
        vals = [float(x).hex() for x in flat.double().tolist()]
    else:
        vals = [str(int(x)) for x in flat.tolist()]
    print(name, e["dtype"], "x".join(map(str, e["shape"])) or "scalar", *vals)
assert 8 + n + end == len(buf), "trailing bytes"
)PY";

TEST(Safetensors, PythonReadsWhatLiandanWrites) {
  ASSERT_TORCH_AVAILABLE();
  TempDir dir;
  const fs::path file = dir / "ld.safetensors";
  const Named tensors = sample_tensors();
  save_safetensors(file, tensors, {{"format", "pt"}, {"step", "12"}});
  auto printed = parse_lines(run_python(dir, kPythonReader, quoted(file)));
  EXPECT_EQ(printed["__metadata__"], (std::vector<std::string>{"format=pt", "step=12"}));
  ASSERT_EQ(printed.size(), tensors.size() + 1);
  const std::map<DType, std::string> names = {{DType::f32, "F32"}, {DType::bf16, "BF16"}, {DType::f16, "F16"},
                                              {DType::i64, "I64"}, {DType::i32, "I32"},   {DType::i8, "I8"},
                                              {DType::u8, "U8"}};
  for (const auto& [name, t] : tensors) {
    const std::vector<std::string>& p = printed[name];
    ASSERT_GE(p.size(), 2u) << name;
    EXPECT_EQ(p[0], names.at(t.dtype())) << name;
    std::ostringstream dims;  // "3x5", "scalar" for 0-d (not "x" + s: GCC 12 warns falsely there)
    for (size_t i = 0; i < t.shape().size(); ++i) dims << (i ? "x" : "") << t.shape()[i];
    EXPECT_EQ(p[1], t.shape().empty() ? "scalar" : dims.str()) << name;
    expect_values(name, t, std::vector<std::string>(p.begin() + 2, p.end()));
  }
}

// ================================================================ the mapping

TEST(Safetensors, GetIsAZeroCopyViewOfTheMap) {
  TempDir dir;
  const fs::path file = dir / "m.safetensors";
  Generator gen(1);
  const Tensor w = randn({8, 16}, &gen), h = randn({4, 4}, &gen).to(DType::bf16);
  save_safetensors(file, {{"w", w}, {"h", h}});
  const SafetensorsFile f = SafetensorsFile::open(file);
  ASSERT_FALSE(mappings_of(file).empty());
  const Tensor a = f.get("w"), b = f.get("w");
  EXPECT_EQ(a.raw(), b.raw());
  EXPECT_TRUE(inside_mapping_of(a.raw(), file));
  EXPECT_EQ(f.get("w", DType::f32).raw(), a.raw()) << "no conversion needed: still the view";
  EXPECT_TRUE(inside_mapping_of(f.get("h").raw(), file));
  const Tensor converted = f.get("h", DType::f32);
  EXPECT_FALSE(inside_mapping_of(converted.raw(), file)) << "a conversion makes a new tensor";
  EXPECT_EQ(bytes_of(converted), bytes_of(h.to(DType::f32)));

  // The mapping is private: writing into a view changes neither the file nor a later reading of it.
  const std::string before = read_bytes(file);
  Tensor c = f.get("w");
  c.fill_(7.0);
  EXPECT_EQ(b.to_vector<float>()[0], 7.0f) << "views of one map share memory";
  EXPECT_EQ(read_bytes(file), before);
  EXPECT_EQ(bytes_of(SafetensorsFile::open(file).get("w")), bytes_of(w));
}

TEST(Safetensors, UnalignedTensorsAreCopied) {
  TempDir dir;
  const fs::path file = dir / "u.safetensors";
  const Tensor odd = from_vector<uint8_t>({1, 2, 3}, {3}), w = from_vector<float>({1.5f, -2.f, 3.25f}, {3});
  save_safetensors(file, {{"odd", odd}, {"w", w}});  // w starts at data offset 3
  const SafetensorsFile f = SafetensorsFile::open(file);
  const Tensor got = f.get("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(got.raw()) % 4, 0u);
  EXPECT_FALSE(inside_mapping_of(got.raw(), file));
  EXPECT_EQ(got.to_vector<float>(), w.to_vector<float>());
  EXPECT_TRUE(inside_mapping_of(f.get("odd").raw(), file)) << "bytes need no alignment";
}

TEST(Safetensors, TheMapOutlivesTheFileObject) {
  TempDir dir;
  const fs::path file = dir / "m.safetensors";
  Generator gen(2);
  const Tensor w = randn({32, 8}, &gen);
  save_safetensors(file, {{"w", w}});
  Tensor view;
  {
    const SafetensorsFile f = SafetensorsFile::open(file);
    view = f.get("w");
  }
  EXPECT_TRUE(inside_mapping_of(view.raw(), file)) << "the tensor keeps the map";
  fs::remove(file);  // even the file's name may go
  EXPECT_EQ(bytes_of(view), bytes_of(w));
  view = Tensor();
  EXPECT_TRUE(mappings_of(file).empty()) << "the last tensor unmaps the file";
}

// ================================================================ checkpoints

TEST(Safetensors, LoadsACheckpointFolder) {
  TempDir dir;
  Generator gen(3);
  const Tensor a = randn({4, 2}, &gen), b = randn({3}, &gen).to(DType::bf16);
  const Tensor ids = from_vector<int64_t>({0, 1, 2}, {3});
  save_safetensors(dir / "model.safetensors", {{"a", a}, {"b", b}, {"ids", ids}});
  auto m = load_checkpoint(dir.path());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(bytes_of(m["a"]), bytes_of(a));
  EXPECT_EQ(m["b"].dtype(), DType::f32);
  EXPECT_EQ(bytes_of(m["b"]), bytes_of(b.to(DType::f32)));
  EXPECT_EQ(m["ids"].dtype(), DType::i64) << "integer buffers keep their dtype";
  EXPECT_EQ(load_checkpoint(dir.path(), std::nullopt)["b"].dtype(), DType::bf16);
  EXPECT_EQ(load_checkpoint(dir.path(), DType::bf16)["a"].dtype(), DType::bf16);
}

TEST(Safetensors, LoadsAShardedCheckpoint) {
  TempDir dir;
  Generator gen(4);
  const Tensor a = randn({4, 2}, &gen), b = randn({3, 3}, &gen).to(DType::bf16);
  const Tensor c = from_vector<int64_t>({5, 6}, {2}), d = randn({2, 2}, &gen).to(DType::f16);
  save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", a}, {"b", b}});
  save_safetensors(dir / "model-00002-of-00002.safetensors", {{"c", c}, {"d", d}, {"unlisted", a}});
  write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {"total_size": 100}, "weight_map": {
      "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
      "c": "model-00002-of-00002.safetensors", "d": "model-00002-of-00002.safetensors"}})");
  auto m = load_checkpoint(dir.path());
  ASSERT_EQ(m.size(), 4u) << "what the weight_map lists";
  EXPECT_EQ(bytes_of(m["a"]), bytes_of(a));
  EXPECT_EQ(bytes_of(m["b"]), bytes_of(b.to(DType::f32)));
  EXPECT_EQ(bytes_of(m["c"]), bytes_of(c));
  EXPECT_EQ(bytes_of(m["d"]), bytes_of(d.to(DType::f32)));
  auto stored = load_checkpoint(dir.path(), std::nullopt);
  EXPECT_EQ(stored["b"].dtype(), DType::bf16);
  EXPECT_EQ(stored["d"].dtype(), DType::f16);
  EXPECT_TRUE(inside_mapping_of(stored["b"].raw(), dir / "model-00001-of-00002.safetensors"));
}

TEST(Safetensors, CheckpointErrors) {
  TempDir dir;
  const std::string msg = error_message([&] { load_checkpoint(dir.path()); });
  expect_mentions(msg, {dir.path().c_str(), "model.safetensors", "model.safetensors.index.json"});

  save_safetensors(dir / "shard1.safetensors", {{"a", zeros({2})}});
  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "shard1.safetensors",
      "ghost": "shard1.safetensors"}})");
  expect_mentions(error_message([&] { load_checkpoint(dir.path()); }),
                  {"model.safetensors.index.json", "'ghost'", "shard1.safetensors", "no such tensor"});

  write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "shard1.safetensors",
      "b": "shard2.safetensors"}})");
  expect_mentions(error_message([&] { load_checkpoint(dir.path()); }),
                  {"model.safetensors.index.json", "shard2.safetensors", "missing", "'b'"});

  write_bytes(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  expect_mentions(error_message([&] { load_checkpoint(dir.path()); }),
                  {"model.safetensors.index.json", "weight_map"});
}

// ================================================================ validation

TEST(Safetensors, RejectsTruncatedFiles) {
  TempDir dir;
  const fs::path p = dir / "t.safetensors";
  write_bytes(p, "abcde");
  expect_mentions(open_error(p), {p.c_str(), "truncated", "5 bytes"});
  write_bytes(p, le64(1000) + "{}");
  expect_mentions(open_error(p), {p.c_str(), "header length 1000", "beyond the end", "10 bytes"});
  // A real file cut short: its offsets now lie beyond the data.
  save_safetensors(p, {{"w", zeros({16})}});
  const std::string full = read_bytes(p);
  write_bytes(p, full.substr(0, full.size() - 4));
  expect_mentions(open_error(p), {p.c_str(), "'w'", "[0, 64]", "outside the data section of 60 bytes"});
  const fs::path missing = dir / "missing.safetensors";
  expect_mentions(open_error(missing), {missing.c_str(), "cannot open"});
}

TEST(Safetensors, RejectsBadHeaders) {
  TempDir dir;
  const fs::path p = dir / "h.safetensors";
  write_raw(p, "{\"w\": [1, 2", 0);
  expect_mentions(open_error(p), {p.c_str(), "not valid JSON"});
  write_raw(p, "[1, 2]", 0);
  expect_mentions(open_error(p), {p.c_str(), "not a JSON object", "array"});
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [1]}})", 4);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "missing 'data_offsets'"});
  write_raw(p, R"({"__metadata__": {"a": 1}})", 0);
  expect_mentions(open_error(p), {p.c_str(), "__metadata__", "'a'", "not a string"});
}

TEST(Safetensors, RejectsUnknownAndUnsupportedDtypes) {
  TempDir dir;
  const fs::path p = dir / "d.safetensors";
  write_raw(p, R"({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})", 4);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "unknown dtype 'Q7'", "F32, BF16"});
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                   "x": {"dtype": "F64", "shape": [1], "data_offsets": [4, 12]}})", 12);
  expect_mentions(open_error(p), {p.c_str(), "'x'", "F64 is not supported"});
  write_raw(p, R"({"mask": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}})", 3);
  expect_mentions(open_error(p), {p.c_str(), "'mask'", "BOOL is not supported"});
}

TEST(Safetensors, RejectsLyingOffsetsAndShapes) {
  TempDir dir;
  const fs::path p = dir / "o.safetensors";
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "[0, 16]", "outside the data section of 8 bytes"});
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "[8, 4]", "outside"});
  write_raw(p, R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12);
  expect_mentions(open_error(p), {p.c_str(), "'a'", "'b'", "overlap"});
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "hold 8 bytes", "[3]", "needs 12"});
  write_raw(p, R"({"w": {"dtype": "BF16", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "hold 8 bytes"});
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}})", 8);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "negative shape entry -1"});
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-4, 4]}})", 8);
  expect_mentions(open_error(p), {p.c_str(), "'w'", "data_offsets"});
}

TEST(Safetensors, AcceptsEmptyTensorsAndNamesMissingOnes) {
  TempDir dir;
  const fs::path p = dir / "z.safetensors";
  write_raw(p, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                   "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
                   "e2": {"dtype": "BF16", "shape": [5, 0], "data_offsets": [4, 4]}})", 4);
  const SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.get("e").shape(), (Shape{0, 3}));
  EXPECT_EQ(f.get("e2", DType::f32).shape(), (Shape{5, 0}));
  expect_mentions(error_message([&] { f.get("missing"); }), {p.c_str(), "'missing'"});
}

// ================================================================ failing saves

TEST(Safetensors, AFailingSaveLeavesNothingBehind) {
  TempDir dir;
  const fs::path target = dir / "m.safetensors";
  save_safetensors(target, {{"w", ones({3})}});
  const std::string before = read_bytes(target);

  const fs::path nowhere = dir / "no_such_dir" / "m.safetensors";
  expect_mentions(error_message([&] { save_safetensors(nowhere, {{"w", ones({3})}}); }),
                  {"no_such_dir", "cannot create"});
  EXPECT_FALSE(fs::exists(dir / "no_such_dir"));

  expect_mentions(error_message([&] { save_safetensors(target, {{"w", zeros({3})}, {"bad", Tensor()}}); }),
                  {target.c_str(), "'bad'", "undefined"});
  expect_mentions(error_message([&] { save_safetensors(target, {{"w", zeros({3})}, {"w", zeros({3})}}); }),
                  {target.c_str(), "'w'", "twice"});
  expect_mentions(error_message([&] { save_safetensors(target, {{"__metadata__", zeros({3})}}); }),
                  {target.c_str(), "__metadata__"});

  // The rename fails after the data is written (the target is a directory): the temporary goes too.
  fs::create_directory(dir / "a_dir");
  expect_mentions(error_message([&] { save_safetensors(dir / "a_dir", {{"w", zeros({3})}}); }),
                  {"a_dir", "rename"});

  EXPECT_EQ(read_bytes(target), before) << "the existing file is untouched";
  EXPECT_EQ(dir_listing(dir.path()), (std::vector<std::string>{"a_dir", "m.safetensors"}));
  EXPECT_TRUE(fs::is_empty(dir / "a_dir"));
}

}  // namespace
}  // namespace ld::io
