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
  bool bias_refused = false;  // the heuristic offered a bias algorithm that cublasLtMatmul refused
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

GemmContext::Plan* GemmContext::plan_for(int64_t batch, const LtOperand& first, const LtOperand& second,
                                         const LtOperand& out, bool has_beta, bool has_bias) {
  const Key key{batch,       int(first.type), first.transposed, first.rows,        first.cols,     first.ld,
                first.batch_stride, first.alignment, int(second.type), second.transposed, second.rows, second.cols,
                second.ld,   second.batch_stride, second.alignment, out.rows,        out.ld,         out.batch_stride,
                out.alignment, has_beta, has_bias};
  std::lock_guard lock(mutex_);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();  // null: no algorithm with the bias epilogue

  auto plan = std::make_unique<Plan>();
  LD_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = first.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = second.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  LD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  LD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (has_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = CUDA_R_32F;
    LD_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    LD_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                   sizeof(bias_type)));
  }
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
  if (has_bias && (st != CUBLAS_STATUS_SUCCESS || found == 0)) {
    plans_.emplace(key, nullptr);  // the caller writes the bias into C first
    return nullptr;
  }
  LD_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, "cuBLASLt has no algorithm for a ", out.cols, "x", out.rows,
           " product (k=", first.transposed ? first.rows : first.cols, ", batch ", batch,
           "): ", cublasLtGetStatusString(st));
  plan->algo = result.algo;
  return plans_.emplace(key, std::move(plan)).first->second.get();
}

bool GemmContext::matmul(int64_t batch, const LtOperand& first, const void* first_ptr, const LtOperand& second,
                         const void* second_ptr, const LtOperand& out, float* out_ptr, float alpha, float beta,
                         const float* bias) {
  Plan* plan = plan_for(batch, first, second, out, beta != 0.0f, bias != nullptr);
  // The bias pointer is per call and the plan's descriptor serves every product of this shape:
  // setting it and queueing the product happen under the lock, so two host threads cannot swap biases.
  std::lock_guard lock(mutex_);
  if (plan == nullptr || plan->bias_refused) return false;
  if (bias != nullptr)
    LD_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const cublasStatus_t st =
      cublasLtMatmul(handle_, plan->desc, &alpha, first_ptr, plan->first, second_ptr, plan->second, &beta, out_ptr,
                     plan->out, out_ptr, plan->out, &plan->algo, workspace_, workspace_bytes_, backend_.stream());
  if (st == CUBLAS_STATUS_NOT_SUPPORTED && bias != nullptr) {  // nothing queued: the caller writes the bias first
    plan->bias_refused = true;
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

}  // namespace

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) {
    cuda::scale_matrix(stream(), g.c, g.batch, g.stride_c, g.m, g.n, g.ldc, g.beta, g.bias);
    return;
  }
  LD_CHECK(g.precision != ComputePrecision::f32 || (g.a_half == nullptr && g.b_half == nullptr),
           "gemm: a 16-bit operand needs a bf16 or fp16 product");
  Stored a{g.a, g.a_half, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a};
  Stored b{g.b, g.b_half, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b};
  cudaDataType_t type = CUDA_R_32F;
  std::shared_ptr<Storage> a_half, b_half;  // alive until the product is queued (stream order does the rest)
  if (g.precision != ComputePrecision::f32) {
    const bool fp16 = g.precision == ComputePrecision::fp16;
    type = fp16 ? CUDA_R_16F : CUDA_R_16BF;
    a = pack_operand(*this, a, g.batch, fp16, a_half);
    b = pack_operand(*this, b, g.batch, fp16, b_half);
  }
  const size_t elem = type == CUDA_R_32F ? 4 : 2;
  // cuBLASLt's first operand is B (column-major it reads B^T as stored); see the header comment.
  cuda::LtOperand first{type, g.trans_b, b.cols, b.rows, b.ld, b.batch_stride, 0};
  cuda::LtOperand second{type, g.trans_a, a.cols, a.rows, a.ld, a.batch_stride, 0};
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
    first.alignment = cuda::alignment_of(bp);
    second.alignment = cuda::alignment_of(ap);
    out.alignment = cuda::alignment_of(cp);
    if (epilogue_bias != nullptr && gemm_->matmul(per_call, first, bp, second, ap, out, cp, g.alpha, beta, epilogue_bias))
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
