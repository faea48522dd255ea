// Matrix products through cuBLASLt. Row-major C = op(A) op(B) is computed as the column-major
// product C^T = op(B)^T op(A)^T, so B is cuBLASLt's first operand and A its second; nothing is
// transposed in memory.
// - precision f32: FP32 compute (CUBLAS_COMPUTE_32F: no TF32), what the CPU backend computes.
// - bf16 / fp16 (autocast): A and B are rounded into compact 16-bit buffers (round to nearest even,
//   as the host does) and multiplied with f32 accumulation into the f32 C; fp16 then rounds C to
//   fp16 values, as the CPU's emulation does (backend.hpp, ComputePrecision). An operand given in
//   16 bits (GemmArgs::a_half / b_half) is read in place when its rows are 16-byte aligned.
// - A bias (GemmArgs::bias) is added by cuBLASLt's BIAS epilogue for a single product.
// Batched products go as one strided-batched call, except when A or B is shared by every item
// (batch stride 0), which runs one call per item.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <bit>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/device_allocator.hpp"
#include "backend/cuda/gemm_context.hpp"
#include "backend/gemm_epilogue.hpp"

#define LD_CUBLAS_CHECK(expr)                                                                                \
  do {                                                                                                       \
    cublasStatus_t ld_cublas_status_ = (expr);                                                               \
    if (ld_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                          \
      LD_FAIL("cuBLASLt error in ", #expr, ": ", cublasLtGetStatusName(ld_cublas_status_), " (",            \
              cublasLtGetStatusString(ld_cublas_status_), ")");                                             \
  } while (0)

namespace ld {

namespace cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS recommends for Hopper

uint32_t alignment_of(const void* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  return address == 0 ? 256u : uint32_t(std::min<uintptr_t>(256, address & (~address + 1)));
}

cublasLtMatrixLayout_t make_layout(const LtOperand& op, int64_t batch) {
  cublasLtMatrixLayout_t layout;
  LD_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, op.type, uint64_t(op.rows), uint64_t(op.cols), op.ld));
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    LD_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    LD_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                     &op.batch_stride, sizeof(op.batch_stride)));
  }
  return layout;
}

}  // namespace

struct GemmContext::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool refused = false;  // the heuristic offered an epilogue algorithm that cublasLtMatmul refused
  ~Plan() {
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (out) cublasLtMatrixLayoutDestroy(out);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

GemmContext::GemmContext(CudaBackend& backend) : backend_(backend) {
  LD_CUBLAS_CHECK(cublasLtCreate(&handle_));
  workspace_bytes_ = kWorkspaceBytes;
  workspace_ = backend_.allocator().allocate(DeviceAllocator::rounded_size(workspace_bytes_));
}

GemmContext::~GemmContext() {
  plans_.clear();
  if (workspace_) backend_.allocator().deallocate(workspace_, DeviceAllocator::rounded_size(workspace_bytes_));
  if (handle_) cublasLtDestroy(handle_);
}

namespace {

cublasLtEpilogue_t lt_epilogue(const LtEpilogue& e) {
  const bool bias = e.bias != nullptr;
  switch (e.kind) {
    case GemmEpilogue::none: return bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    case GemmEpilogue::gelu_tanh: return bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    case GemmEpilogue::dgelu_tanh: return CUBLASLT_EPILOGUE_DGELU;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

template <typename T>
void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
  LD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

// The epilogue's attributes on a descriptor; the pointers are set again before every product.
void describe_epilogue(cublasLtMatmulDesc_t desc, const LtEpilogue& e, cudaDataType_t out_type) {
  if (!e.any()) return;
  set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_epilogue(e));
  if (e.bias != nullptr) {
    set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, CUDA_R_32F);
    set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, e.bias);  // for its alignment, as aux's below
  }
  if (e.kind == GemmEpilogue::none) return;
  set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, e.aux_ld);
  // aux defaults to D's type; the pre-activation stays f32 whatever D is
  if (out_type != CUDA_R_32F) set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, int32_t(CUDA_R_32F));
  set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, static_cast<void*>(e.aux));  // for its alignment
}

}  // namespace

uint32_t LtEpilogue::alignment() const { return std::min(alignment_of(bias), alignment_of(aux)); }

GemmContext::Plan* GemmContext::plan_for(int64_t batch, const LtOperand& first, const LtOperand& second,
                                         const LtOperand& out, bool has_beta, const LtEpilogue& epilogue) {
  const Key key{batch,       int(first.type), first.transposed, first.rows,        first.cols,     first.ld,
                first.batch_stride, first.alignment, int(second.type), second.transposed, second.rows, second.cols,
                second.ld,   second.batch_stride, second.alignment, int(out.type), out.rows,   out.ld,
                out.batch_stride, out.alignment, has_beta, epilogue.bias != nullptr, int(epilogue.kind),
                epilogue.aux_ld, epilogue.alignment()};
  std::lock_guard lock(mutex_);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();  // null: no algorithm with the epilogue

  auto plan = std::make_unique<Plan>();
  LD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, first.transposed ? CUBLAS_OP_T : CUBLAS_OP_N);
  set_desc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, second.transposed ? CUBLAS_OP_T : CUBLAS_OP_N);
  describe_epilogue(plan->desc, epilogue, out.type);
  plan->first = make_layout(first, batch);
  plan->second = make_layout(second, batch);
  plan->out = make_layout(out, batch);

  cublasLtMatmulPreference_t pref;
  LD_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  LD_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // The heuristic assumes 256-byte aligned pointers unless told: views at odd offsets are common.
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, first.alignment},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, second.alignment},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, out.alignment},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, out.alignment}};
  for (const auto& [attr, bytes] : alignments)
    LD_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &bytes, sizeof(bytes)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, plan->desc, plan->first, plan->second, plan->out,
                                                           plan->out, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (epilogue.any() && (st != CUBLAS_STATUS_SUCCESS || found == 0)) {
    plans_.emplace(key, nullptr);  // the caller does the epilogue's work itself
    return nullptr;
  }
  LD_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, "cuBLASLt has no algorithm for a ", out.cols, "x", out.rows,
           " product (k=", first.transposed ? first.rows : first.cols, ", batch ", batch,
           "): ", cublasLtGetStatusString(st));
  plan->algo = result.algo;
  return plans_.emplace(key, std::move(plan)).first->second.get();
}

bool GemmContext::matmul(int64_t batch, const LtOperand& first, const void* first_ptr, const LtOperand& second,
                         const void* second_ptr, const LtOperand& out, void* out_ptr, float alpha, float beta,
                         const LtEpilogue& epilogue) {
  Plan* plan = plan_for(batch, first, second, out, beta != 0.0f, epilogue);
  // The epilogue's pointers are per call and the plan's descriptor serves every product of this
  // shape: setting them and queueing the product happen under the lock, so two host threads cannot
  // swap them.
  std::lock_guard lock(mutex_);
  if (plan == nullptr || plan->refused) return false;
  if (epilogue.bias != nullptr) set_desc(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, epilogue.bias);
  if (epilogue.kind != GemmEpilogue::none)
    set_desc(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, static_cast<void*>(epilogue.aux));
  const cublasStatus_t st =
      cublasLtMatmul(handle_, plan->desc, &alpha, first_ptr, plan->first, second_ptr, plan->second, &beta, out_ptr,
                     plan->out, out_ptr, plan->out, &plan->algo, workspace_, workspace_bytes_, backend_.stream());
  // Refused (nothing queued): the caller does the epilogue's work itself. An aux or bias type
  // cuBLASLt does not take with this output (its docs give both D's type) comes back as INVALID_VALUE.
  const bool refusal = st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE;
  if (refusal && epilogue.any()) {
    plan->refused = true;
    return false;
  }
  LD_CUBLAS_CHECK(st);
  return true;
}

}  // namespace cuda

namespace {

// A or B as stored: rows x cols (row-major, leading dim ld); f32, or already 16-bit (half).
struct Stored {
  const float* p;
  const uint16_t* half;
  int64_t rows, cols, ld, batch_stride;
};

// A stored operand as a bf16/fp16 buffer whose rows start 16 bytes apart (ld a multiple of 8):
// cuBLASLt's tensor-core algorithms want 16-byte aligned columns, and an odd k (53) would otherwise
// leave only 2-byte alignment and maybe no algorithm at all. f32 is rounded into a new buffer; a
// 16-bit operand is read in place when it already lies so, else copied.
Stored pack_operand(CudaBackend& be, const Stored& s, int64_t batch, bool fp16, std::shared_ptr<Storage>& keep) {
  if (s.half != nullptr && s.ld % 8 == 0 && (s.batch_stride % 8 == 0) && cuda::alignment_of(s.half) >= 16)
    return {reinterpret_cast<const float*>(s.half), nullptr, s.rows, s.cols, s.ld, s.batch_stride};
  const int64_t items = s.batch_stride == 0 ? 1 : batch, ld = (s.cols + 7) / 8 * 8;
  keep = be.allocate(size_t(items * s.rows * ld) * 2);
  auto* dst = static_cast<uint16_t*>(keep->data());
  if (s.half != nullptr)
    cuda::repack_half(be.stream(), s.half, items, s.batch_stride, s.rows, s.cols, s.ld, dst, ld);
  else
    cuda::pack_half(be.stream(), s.p, items, s.batch_stride, s.rows, s.cols, s.ld, dst, ld, fp16);
  return {reinterpret_cast<const float*>(dst), nullptr, s.rows, s.cols, ld, s.batch_stride == 0 ? 0 : s.rows * ld};
}

// A and B as cuBLASLt reads them: for a bf16/fp16 product, in 16 bits (packed or as given).
struct Operands {
  Stored a, b;
  cudaDataType_t type = CUDA_R_32F;
  std::shared_ptr<Storage> a_keep, b_keep;  // alive until the product is queued (stream order does the rest)
  size_t element_bytes() const { return type == CUDA_R_32F ? 4 : 2; }
};

Operands operands_for(CudaBackend& be, const GemmArgs& g) {
  LD_CHECK(g.precision != ComputePrecision::f32 || (g.a_half == nullptr && g.b_half == nullptr),
           "gemm: a 16-bit operand needs a bf16 or fp16 product");
  Operands o;
  o.a = {g.a, g.a_half, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a};
  o.b = {g.b, g.b_half, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b};
  if (g.precision != ComputePrecision::f32) {
    const bool fp16 = g.precision == ComputePrecision::fp16;
    o.type = fp16 ? CUDA_R_16F : CUDA_R_16BF;
    o.a = pack_operand(be, o.a, g.batch, fp16, o.a_keep);
    o.b = pack_operand(be, o.b, g.batch, fp16, o.b_keep);
  }
  return o;
}

// g's epilogue and 16-bit C in cuBLASLt's epilogue, for a bf16 product whose C, aux and bias suit it
// (16-byte aligned rows); f32 and fp16 products keep the CPU's passes, so their numbers stay the
// CPU's. Otherwise, or when cuBLASLt has no algorithm for it, the passes run on the operands already
// packed here.
// Returns how it ran (CudaBackend::last_epilogue_path).
const char* gemm_with_epilogue(CudaBackend& be, cuda::GemmContext& lt, const GemmArgs& g) {
  check_epilogue(g);
  void* out_ptr = g.c_half != nullptr ? static_cast<void*>(g.c_half) : static_cast<void*>(g.c);
  const bool suits = g.precision == ComputePrecision::bf16 && g.k > 0 && g.n % 8 == 0 &&
                     cuda::alignment_of(out_ptr) >= 16 && (g.aux == nullptr || cuda::alignment_of(g.aux) >= 16) &&
                     (g.bias == nullptr || cuda::alignment_of(g.bias) >= 16);
  if (!suits) {
    gemm_then_epilogue(be, g);
    return "passes";
  }
  const Operands o = operands_for(be, g);
  const cuda::LtOperand first{o.type, g.trans_b, o.b.cols, o.b.rows, o.b.ld, 0, cuda::alignment_of(o.b.p)};
  const cuda::LtOperand second{o.type, g.trans_a, o.a.cols, o.a.rows, o.a.ld, 0, cuda::alignment_of(o.a.p)};
  const cuda::LtEpilogue epilogue{g.bias, g.epilogue, g.aux, g.n};
  const cuda::LtOperand out{g.c_half != nullptr ? CUDA_R_16BF : CUDA_R_32F, false, g.n, g.m, g.n, 0,
                            cuda::alignment_of(out_ptr)};
  if (lt.matmul(1, first, o.b.p, second, o.a.p, out, out_ptr, 1.0f, 0.0f, epilogue)) return "cublaslt";
  if (g.c_half != nullptr) {
    // cuBLASLt may want aux in D's type (an f32 aux beside a bf16 D refused): D in f32, then rounded.
    const std::shared_ptr<Storage> wide = be.allocate(size_t(g.m * g.n) * sizeof(float));
    const cuda::LtOperand wide_out{CUDA_R_32F, false, g.n, g.m, g.n, 0, cuda::alignment_of(wide->data())};
    if (lt.matmul(1, first, o.b.p, second, o.a.p, wide_out, wide->data(), 1.0f, 0.0f, epilogue)) {
      cuda::pack_half(be.stream(), static_cast<const float*>(wide->data()), 1, 0, g.m, g.n, g.n, g.c_half, g.n,
                      /*fp16=*/false);
      return "cublaslt_f32_d";
    }
  }
  GemmArgs packed = g;  // refused: the passes, reading the 16-bit operands as packed
  packed.a = nullptr, packed.a_half = reinterpret_cast<const uint16_t*>(o.a.p), packed.lda = o.a.ld;
  packed.b = nullptr, packed.b_half = reinterpret_cast<const uint16_t*>(o.b.p), packed.ldb = o.b.ld;
  gemm_then_epilogue(be, packed);
  return "passes";
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (has_epilogue(g)) {
    last_epilogue_path_ = gemm_with_epilogue(*this, *gemm_, g);
    return;
  }
  if (g.k == 0) {
    cuda::scale_matrix(stream(), g.c, g.batch, g.stride_c, g.m, g.n, g.ldc, g.beta, g.bias);
    return;
  }
  const Operands o = operands_for(*this, g);
  const Stored &a = o.a, &b = o.b;
  const size_t elem = o.element_bytes();
  // cuBLASLt's first operand is B (column-major it reads B^T as stored); see the header comment.
  cuda::LtOperand first{o.type, g.trans_b, b.cols, b.rows, b.ld, b.batch_stride, 0};
  cuda::LtOperand second{o.type, g.trans_a, a.cols, a.rows, a.ld, a.batch_stride, 0};
  cuda::LtOperand out{CUDA_R_32F, false, g.n, g.m, g.ldc, g.stride_c, 0};
  const bool shared_operand = g.batch > 1 && (a.batch_stride == 0 || b.batch_stride == 0);
  const int64_t calls = shared_operand ? g.batch : 1, per_call = shared_operand ? 1 : g.batch;
  // A projection's bias (one product): added by the GEMM's epilogue, saving a write and a read of C.
  // Otherwise, or when cuBLASLt has no such algorithm, written into C first for a beta-1 product.
  const float* epilogue_bias =
      g.bias != nullptr && g.batch == 1 && cuda::alignment_of(g.bias) >= 16 ? g.bias : nullptr;
  float beta = g.beta;
  auto write_bias_first = [&] {
    cuda::scale_matrix(stream(), g.c, g.batch, g.stride_c, g.m, g.n, g.ldc, beta, g.bias);
    beta = 1.0f;
  };
  if (g.bias != nullptr && epilogue_bias == nullptr) write_bias_first();
  for (int64_t i = 0; i < calls; ++i) {
    const auto* bp = reinterpret_cast<const char*>(b.p) + size_t(i * b.batch_stride) * elem;
    const auto* ap = reinterpret_cast<const char*>(a.p) + size_t(i * a.batch_stride) * elem;
    float* cp = g.c + i * g.stride_c;
    // a strided batch's items lie stride bytes apart: the least aligned of them counts
    auto items_alignment = [&](const void* p, int64_t stride_bytes) {
      const uint32_t base = cuda::alignment_of(p);
      if (per_call == 1 || stride_bytes == 0) return base;
      return std::min(base, cuda::alignment_of(reinterpret_cast<const void*>(uintptr_t(stride_bytes))));
    };
    first.alignment = items_alignment(bp, b.batch_stride * int64_t(elem));
    second.alignment = items_alignment(ap, a.batch_stride * int64_t(elem));
    out.alignment = items_alignment(cp, g.stride_c * int64_t(sizeof(float)));
    if (epilogue_bias != nullptr &&
        gemm_->matmul(per_call, first, bp, second, ap, out, cp, g.alpha, beta, cuda::LtEpilogue{epilogue_bias}))
      continue;
    if (epilogue_bias != nullptr) write_bias_first();
    gemm_->matmul(per_call, first, bp, second, ap, out, cp, g.alpha, beta);
  }
  if (g.precision == ComputePrecision::fp16) cuda::round_to_f16(stream(), g.c, g.batch, g.stride_c, g.m, g.n, g.ldc);
}

// The bf16 weight is widened to f32 (exactly) and multiplied in f32: the CPU's numbers.
void CudaBackend::linear_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, bool w_kn, float* y,
                              bool accumulate) {
  if (m == 0 || n == 0) return;
  std::shared_ptr<Storage> wide = allocate(size_t(n * k) * sizeof(float));
  cuda::widen_bf16(stream(), w, n * k, static_cast<float*>(wide->data()));
  GemmArgs g;
  g.trans_b = !w_kn;
  g.m = m, g.n = n, g.k = k;
  g.beta = accumulate ? 1.0f : 0.0f;
  g.a = x, g.lda = std::max<int64_t>(k, 1);
  g.b = static_cast<const float*>(wide->data()), g.ldb = std::max<int64_t>(w_kn ? n : k, 1);
  g.c = y, g.ldc = n;
  gemm(g);
}

}  // namespace ld
