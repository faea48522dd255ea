// bf16 and fp16 matrix products (autocast, ops/autocast.hpp): operands rounded to the half type,
// products accumulated in f32, C stays f32.
// - bf16: the operands are converted (round to nearest even) into bf16 scratch buffers and
//   multiplied by oneDNN's matmul primitive with bf16 src/weights and an f32 dst (avx512_core_bf16
//   kernels where the CPU has them). Transposes are described by strides; alpha is an output scale,
//   beta a sum post-op. Primitives are created once per shape and cached. Where oneDNN has only its
//   reference kernel (or none) for bf16, the operands are rounded to bf16 values in f32 buffers and
//   the f32 GEMM runs them: the same numbers, slower.
// - fp16: this CPU has no fast fp16 GEMM, so fp16 is emulated for its numerics (range, loss
//   scaling), not for speed: operands rounded to fp16 values (overflow -> inf), the f32 GEMM, then
//   the result rounded to fp16 as a real fp16 GEMM's output would be.
// An operand given already rounded (GemmArgs::a_half / b_half) is read in place by the bf16 matmul
// when its rows lie back to back, else copied or widened instead of rounded.
#include "backend/cpu/gemm_half.hpp"

#include <dnnl.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/half_rows.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace ld::cpu {

namespace {

// One operand as it lies in memory: rows x cols with leading dimension ld, batch items apart; in f32,
// or already rounded to the precision's 16-bit type (GemmArgs::a_half / b_half).
struct Stored {
  const float* p;
  const uint16_t* half;
  int64_t rows, cols, ld, batch_stride;
  int64_t items(int64_t batch) const { return batch_stride == 0 ? 1 : batch; }
  // Laid out as pack() would write it: 16-bit rows back to back.
  bool packed_half(int64_t batch) const {
    return half != nullptr && ld == cols && (items(batch) == 1 || batch_stride == rows * cols);
  }
};

Stored stored_a(const GemmArgs& g) {
  return {g.a, g.a_half, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a};
}
Stored stored_b(const GemmArgs& g) {
  return {g.b, g.b_half, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b};
}

// Converts an operand row by row into dst, packed as [items, rows, cols]: f32 rows by from_f32,
// 16-bit ones by from_half.
template <typename T>
void pack(const Stored& s, int64_t items, T* dst, void (*from_f32)(const float*, int64_t, T*),
          void (*from_half)(const uint16_t*, int64_t, T*)) {
  const int64_t rows_total = items * s.rows;
#pragma omp parallel for schedule(static) if (rows_total * s.cols >= (int64_t(1) << 15))
  for (int64_t r = 0; r < rows_total; ++r) {
    const int64_t at = (r / s.rows) * s.batch_stride + (r % s.rows) * s.ld;
    if (s.half != nullptr)
      from_half(s.half + at, s.cols, dst + r * s.cols);
    else
      from_f32(s.p + at, s.cols, dst + r * s.cols);
  }
}

template <typename T>
T* scratch(std::vector<T>& buffer, int64_t n) {
  if (buffer.size() < size_t(n)) buffer.resize(size_t(n));
  return buffer.data();
}

// Runs g on copies of A and B rounded by round_row (16-bit operands widened by widen_row) into f32
// buffers.
void gemm_on_rounded(const GemmArgs& g, void (*round_row)(const float*, int64_t, float*),
                     void (*widen_row)(const uint16_t*, int64_t, float*), F32Gemm f32_gemm) {
  thread_local std::vector<float> a_buf, b_buf;
  const Stored sa = stored_a(g), sb = stored_b(g);
  const int64_t a_items = sa.items(g.batch), b_items = sb.items(g.batch);
  float* a = scratch(a_buf, a_items * sa.rows * sa.cols);
  float* b = scratch(b_buf, b_items * sb.rows * sb.cols);
  pack(sa, a_items, a, round_row, widen_row);
  pack(sb, b_items, b, round_row, widen_row);
  GemmArgs r = g;
  r.precision = ComputePrecision::f32;
  r.a_half = r.b_half = nullptr;
  r.a = a, r.lda = sa.cols, r.stride_a = a_items == 1 ? 0 : sa.rows * sa.cols;
  r.b = b, r.ldb = sb.cols, r.stride_b = b_items == 1 ? 0 : sb.rows * sb.cols;
  f32_gemm(r);
}

void round_output_to_f16(const GemmArgs& g) {
  const int64_t rows_total = g.batch * g.m;
#pragma omp parallel for schedule(static) if (rows_total * g.n >= (int64_t(1) << 15))
  for (int64_t r = 0; r < rows_total; ++r) {
    float* row = g.c + (r / g.m) * g.stride_c + (r % g.m) * g.ldc;
    round_f16_row(row, g.n, row);
  }
}

// oneDNN bf16 matmul primitives (bf16 A and B packed as stored, f32 C), one per shape.
class Bf16MatmulCache {
 public:
  // Returns false when oneDNN has no optimised bf16 matmul for this shape on this CPU.
  bool run(const GemmArgs& g, const uint16_t* a, const uint16_t* b, bool a_shared, bool b_shared) {
    using dt = dnnl::memory::data_type;
    using dims = dnnl::memory::dims;
    const bool batched = g.batch > 1;
    dnnl::memory::desc a_md, b_md, c_md;
    if (batched) {
      a_md = dnnl::memory::desc({a_shared ? 1 : g.batch, g.m, g.k}, dt::bf16,
                                g.trans_a ? dims{g.m * g.k, 1, g.m} : dims{g.m * g.k, g.k, 1});
      b_md = dnnl::memory::desc({b_shared ? 1 : g.batch, g.k, g.n}, dt::bf16,
                                g.trans_b ? dims{g.k * g.n, 1, g.k} : dims{g.k * g.n, g.n, 1});
      c_md = dnnl::memory::desc({g.batch, g.m, g.n}, dt::f32, dims{g.stride_c, g.ldc, 1});
    } else {
      a_md = dnnl::memory::desc({g.m, g.k}, dt::bf16, g.trans_a ? dims{1, g.m} : dims{g.k, 1});
      b_md = dnnl::memory::desc({g.k, g.n}, dt::bf16, g.trans_b ? dims{1, g.k} : dims{g.n, 1});
      c_md = dnnl::memory::desc({g.m, g.n}, dt::f32, dims{g.ldc, 1});
    }
    const Key key{g.m, g.n, g.k, g.ldc, batched ? g.stride_c : 0, g.batch, g.trans_a, g.trans_b,
                  a_shared, b_shared, g.alpha, g.beta};
    std::shared_ptr<dnnl::matmul> prim;
    {
      std::lock_guard lock(mutex_);
      auto it = cache_.find(key);
      if (it == cache_.end()) it = cache_.emplace(key, create(g.alpha, g.beta, a_md, b_md, c_md)).first;
      prim = it->second;
    }
    if (!prim) return false;
    dnnl::memory a_mem(a_md, engine_, const_cast<uint16_t*>(a));
    dnnl::memory b_mem(b_md, engine_, const_cast<uint16_t*>(b));
    dnnl::memory c_mem(c_md, engine_, g.c);
    prim->execute(stream_, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    stream_.wait();
    return true;
  }

  // Whether oneDNN has an optimised bf16 matmul on this CPU at all (probed on a 64x64x64 product).
  bool native_available() {
    using dt = dnnl::memory::data_type;
    const dnnl::memory::desc md({64, 64}, dt::bf16, dnnl::memory::dims{64, 1});
    const dnnl::memory::desc c_md({64, 64}, dt::f32, dnnl::memory::dims{64, 1});
    return create(1.0f, 0.0f, md, md, c_md) != nullptr;
  }

 private:
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool, bool, float, float>;

  // nullptr when oneDNN cannot make one, or only its (very slow) reference kernel.
  std::shared_ptr<dnnl::matmul> create(float alpha, float beta, const dnnl::memory::desc& a_md,
                                       const dnnl::memory::desc& b_md, const dnnl::memory::desc& c_md) {
    try {
      dnnl::primitive_attr attr;
      if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
      if (beta != 0.0f) {
        dnnl::post_ops ops;
        ops.append_sum(beta);  // C = alpha A B + beta C
        attr.set_post_ops(ops);
      }
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
      if (std::string(pd.impl_info_str()).find("ref") != std::string::npos) return nullptr;
      return std::make_shared<dnnl::matmul>(pd);
    } catch (const dnnl::error&) {
      return nullptr;
    }
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::mutex mutex_;
  std::map<Key, std::shared_ptr<dnnl::matmul>> cache_;
};

Bf16MatmulCache& bf16_cache() {
  static Bf16MatmulCache cache;
  return cache;
}

// A and B as packed bf16: given ones in place when already packed, others converted into buf.
const uint16_t* packed_bf16(const Stored& s, int64_t batch, std::vector<uint16_t>& buf) {
  if (s.packed_half(batch)) return s.half;
  const int64_t items = s.items(batch);
  uint16_t* dst = scratch(buf, items * s.rows * s.cols);
  pack(s, items, dst, to_bf16_row, copy_half_row);
  return dst;
}

// Runs oneDNN's bf16 matmul on A and B in bf16; false when it has none for this shape.
bool bf16_native(const GemmArgs& g) {
  thread_local std::vector<uint16_t> a_buf, b_buf;
  const Stored sa = stored_a(g), sb = stored_b(g);
  const int64_t a_items = sa.items(g.batch), b_items = sb.items(g.batch);
  const uint16_t* a = packed_bf16(sa, g.batch, a_buf);
  const uint16_t* b = packed_bf16(sb, g.batch, b_buf);
  return bf16_cache().run(g, a, b, a_items == 1 && g.batch > 1, b_items == 1 && g.batch > 1);
}

}  // namespace

namespace {
std::atomic<int> forced_emulation{0};
}  // namespace

bool has_native_bf16_gemm() {
  static const bool available = bf16_cache().native_available();
  return available && forced_emulation.load() == 0;
}

ForceEmulatedBf16::ForceEmulatedBf16() { ++forced_emulation; }
ForceEmulatedBf16::~ForceEmulatedBf16() { --forced_emulation; }

void gemm_half(const GemmArgs& g, F32Gemm f32_gemm) {
  LD_ASSERT(g.precision != ComputePrecision::f32, "gemm_half called for an f32 product");
  if (g.precision == ComputePrecision::bf16) {
    if (has_native_bf16_gemm() && bf16_native(g)) return;
    gemm_on_rounded(g, round_bf16_row, widen_bf16_row, f32_gemm);
    return;
  }
  gemm_on_rounded(g, round_f16_row, widen_f16_row, f32_gemm);
  round_output_to_f16(g);
}

}  // namespace ld::cpu
