// The timing wrapper KernelProfile installs: every Backend virtual forwards to the real backend,
// timed between two synchronizes of it (kernel_profile.hpp says why). Labels split a kernel by what
// changes its cost: a GEMM by precision and epilogue, a copy by its dtypes, an elementwise op by op.
#include "backend/profiled_backend.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "backend/backend.hpp"
#include "backend/kernel_profile.hpp"

namespace ld {

namespace {

const char* precision_name(ComputePrecision p) {
  switch (p) {
    case ComputePrecision::f32: return "f32";
    case ComputePrecision::bf16: return "bf16";
    case ComputePrecision::fp16: return "fp16";
  }
  return "?";
}

std::string gemm_label(const GemmArgs& g) {
  std::string s = std::string("gemm ") + precision_name(g.precision);
  if (g.epilogue == GemmEpilogue::gelu_tanh) s += " gelu_tanh";
  if (g.epilogue == GemmEpilogue::dgelu_tanh) s += " dgelu_tanh";
  if (g.c_half != nullptr) s += " 16-bit out";
  if (g.batch > 1) s += " batched";
  return s;
}

// Matrix FLOPs of attention as liandan_bench_cuda counts them: 4*B*Hq*Tq*Tk*D, half of it when
// causal over a square; the backward 2.5x the forward.
double attention_flops(const AttentionArgs& a) {
  const double dense = 4.0 * double(a.batch) * double(a.q_heads) * double(a.q_len) * double(a.kv_len) *
                       double(a.head_dim);
  return a.causal && a.q_len == a.kv_len ? dense / 2 : dense;
}

class ProfiledBackend final : public Backend {
 public:
  explicit ProfiledBackend(Backend& real) : real_(real), device_(real.device().str()) {}

  Device device() const override { return real_.device(); }
  std::string_view name() const override { return real_.name(); }

  std::shared_ptr<Storage> allocate(size_t nbytes) override {
    return timed("allocate", 0, [&] { return real_.allocate(nbytes); });
  }
  void copy_from_host(void* dst, const void* src, size_t n) override {
    timed("copy from host", 0, [&] { real_.copy_from_host(dst, src, n); });
  }
  void copy_to_host(void* dst, const void* src, size_t n) override {
    timed("copy to host", 0, [&] { real_.copy_to_host(dst, src, n); });
  }
  void synchronize() override { real_.synchronize(); }

  void copy_strided(int ndim, const int64_t* shape, DType st, const void* src, const int64_t* ss, DType dt, void* dst,
                    const int64_t* ds) override {
    timed(std::string("copy ").append(dtype_name(st)).append("->").append(dtype_name(dt)), 0,
          [&] { real_.copy_strided(ndim, shape, st, src, ss, dt, dst, ds); });
  }
  void fill(DType dtype, void* dst, int64_t n, double value) override {
    timed("fill", 0, [&] { real_.fill(dtype, dst, n, value); });
  }
  void random_fill(RandomKind kind, float* dst, int64_t n, uint64_t seed, uint64_t offset, float a, float b) override {
    timed("random_fill", 0, [&] { real_.random_fill(kind, dst, n, seed, offset, a, b); });
  }

  void binary(BinaryOp op, int ndim, const int64_t* shape, const float* a, const int64_t* as, const float* b,
              const int64_t* bs, float* out) override {
    timed(std::string("binary ") + op_name(op), 0, [&] { real_.binary(op, ndim, shape, a, as, b, bs, out); });
  }
  void unary(UnaryOp op, int64_t n, const float* x, float* y) override {
    timed(std::string("unary ") + op_name(op), 0, [&] { real_.unary(op, n, x, y); });
  }
  void unary_backward(UnaryOp op, int64_t n, const float* x, const float* y, const float* dy, float* dx) override {
    timed(std::string("unary_backward ") + op_name(op), 0, [&] { real_.unary_backward(op, n, x, y, dy, dx); });
  }
  void affine(int64_t n, const float* x, float alpha, float beta, float* y) override {
    timed("affine", 0, [&] { real_.affine(n, x, alpha, beta, y); });
  }
  void where(int ndim, const int64_t* shape, const uint8_t* c, const int64_t* cs, const float* a, const int64_t* as,
             const float* b, const int64_t* bs, float* out) override {
    timed("where", 0, [&] { real_.where(ndim, shape, c, cs, a, as, b, bs, out); });
  }
  void swiglu_forward(int64_t n, const float* gate, const float* up, float* out) override {
    timed("swiglu_forward", 0, [&] { real_.swiglu_forward(n, gate, up, out); });
  }
  void swiglu_backward(int64_t n, const float* gate, const float* up, const float* dout, float* dgate,
                       float* dup) override {
    timed("swiglu_backward", 0, [&] { real_.swiglu_backward(n, gate, up, dout, dgate, dup); });
  }
  void dropout(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) override {
    timed("dropout", 0, [&] { real_.dropout(n, x, p, seed, offset, y); });
  }

  void reduce_sum(int64_t outer, int64_t n, int64_t inner, const float* x, float* out) override {
    timed("reduce_sum", 0, [&] { real_.reduce_sum(outer, n, inner, x, out); });
  }
  void argmax(int64_t rows, int64_t cols, const float* x, int64_t* out) override {
    timed("argmax", 0, [&] { real_.argmax(rows, cols, x, out); });
  }
  void topk(int64_t rows, int64_t cols, int64_t k, const float* x, float* values, int64_t* indices) override {
    timed("topk", 0, [&] { real_.topk(rows, cols, k, x, values, indices); });
  }
  void scatter_add_rows(int64_t rows, int64_t cols, int64_t k, const int64_t* index, const float* src,
                        float* dst) override {
    timed("scatter_add_rows", 0, [&] { real_.scatter_add_rows(rows, cols, k, index, src, dst); });
  }

  void gemm(const GemmArgs& g) override {
    const double flops = 2.0 * double(g.m) * double(g.n) * double(g.k) * double(g.batch);
    timed(gemm_label(g), flops, [&] { real_.gemm(g); });
  }
  void linear_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, bool w_kn, float* y,
                   bool accumulate) override {
    timed("linear_bf16", 2.0 * double(m) * double(n) * double(k),
          [&] { real_.linear_bf16(m, n, k, x, w, w_kn, y, accumulate); });
  }

  void layernorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w,
                         const float* b, float eps, float* sum_out, float* y, float* mean, float* rstd) override {
    timed(residual ? "layernorm_forward +residual" : "layernorm_forward", 0,
          [&] { real_.layernorm_forward(rows, cols, x, residual, w, b, eps, sum_out, y, mean, rstd); });
  }
  void layernorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w,
                          const float* mean, const float* rstd, float* dx, float* dw, float* db) override {
    timed("layernorm_backward", 0, [&] { real_.layernorm_backward(rows, cols, dy, x, w, mean, rstd, dx, dw, db); });
  }
  void rmsnorm_forward(int64_t rows, int64_t cols, const float* x, const float* residual, const float* w, float eps,
                       float* sum_out, float* y, float* rstd) override {
    timed(residual ? "rmsnorm_forward +residual" : "rmsnorm_forward", 0,
          [&] { real_.rmsnorm_forward(rows, cols, x, residual, w, eps, sum_out, y, rstd); });
  }
  void rmsnorm_backward(int64_t rows, int64_t cols, const float* dy, const float* x, const float* w, const float* rstd,
                        float* dx, float* dw) override {
    timed("rmsnorm_backward", 0, [&] { real_.rmsnorm_backward(rows, cols, dy, x, w, rstd, dx, dw); });
  }

  void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y, bool log) override {
    timed(log ? "log_softmax_forward" : "softmax_forward", 0, [&] { real_.softmax_forward(rows, cols, x, y, log); });
  }
  void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx, bool log) override {
    timed(log ? "log_softmax_backward" : "softmax_backward", 0,
          [&] { real_.softmax_backward(rows, cols, y, dy, dx, log); });
  }

  void embedding_forward(int64_t n, const void* ids, DType id_dtype, int64_t dim, const float* table,
                         float* out) override {
    timed("embedding_forward", 0, [&] { real_.embedding_forward(n, ids, id_dtype, dim, table, out); });
  }
  void embedding_backward(int64_t n, const void* ids, DType id_dtype, int64_t vocab, int64_t dim, const float* dy,
                          float* dtable) override {
    timed("embedding_backward", 0, [&] { real_.embedding_backward(n, ids, id_dtype, vocab, dim, dy, dtable); });
  }

  void attention_forward(const AttentionArgs& a, const float* q, const float* k, const float* v, float* out,
                         float* lse) override {
    timed(attention_label("attention_forward", a), attention_flops(a),
          [&] { real_.attention_forward(a, q, k, v, out, lse); });
  }
  void attention_backward(const AttentionArgs& a, const float* q, const float* k, const float* v, const float* out,
                          const float* dout, const float* lse, float* dq, float* dk, float* dv) override {
    timed(attention_label("attention_backward", a), 2.5 * attention_flops(a),
          [&] { real_.attention_backward(a, q, k, v, out, dout, lse, dq, dk, dv); });
  }
  void rope(const RopeArgs& a, const float* x, float* y) override { timed("rope", 0, [&] { real_.rope(a, x, y); }); }

  void cross_entropy_forward(const CrossEntropyArgs& a, float* loss_rows, float* lse) override {
    timed(std::string("cross_entropy_forward ").append(dtype_name(a.logits_dtype)), 0,
          [&] { real_.cross_entropy_forward(a, loss_rows, lse); });
  }
  void cross_entropy_backward(const CrossEntropyArgs& a, const float* lse, const float* dloss_rows,
                              void* dlogits) override {
    timed(std::string("cross_entropy_backward ").append(dtype_name(a.logits_dtype)), 0,
          [&] { real_.cross_entropy_backward(a, lse, dloss_rows, dlogits); });
  }

  void adamw_step(std::span<const AdamWArgs> buffers) override {
    timed("adamw_step", 0, [&] { real_.adamw_step(buffers); });
  }
  void round_bf16(int64_t n, const float* x, uint16_t* y, uint64_t key, uint64_t counter) override {
    timed(key == 0 ? "round_bf16" : "round_bf16 stochastic", 0, [&] { real_.round_bf16(n, x, y, key, counter); });
  }

 private:
  static std::string attention_label(const char* base, const AttentionArgs& a) {
    std::string s = base;
    if (a.causal) s += " causal";
    if (a.mask != nullptr) s += " masked";
    if (a.allow_bf16) s += " bf16-allowed";
    return s;
  }

  // Runs f; when a profile is active, times it between two synchronizes and records it. (Kernels
  // call their own backend, never backend_for(), so no call is counted inside another.)
  template <typename F>
  auto timed(const std::string& label, double flops, F&& f) -> decltype(f()) {
    KernelProfile* profile = active_kernel_profile();
    if (profile == nullptr) return f();
    using Clock = std::chrono::steady_clock;
    real_.synchronize();
    const auto t0 = Clock::now();
    auto finish = [&] {
      real_.synchronize();
      profile->record(label, device_, std::chrono::duration<double>(Clock::now() - t0).count(), flops);
    };
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      finish();
    } else {
      auto result = f();
      finish();
      return result;
    }
  }

  Backend& real_;
  std::string device_;
};

}  // namespace

Backend& profiled_backend(Backend& real) {
  static std::mutex mutex;
  static auto* wrappers = new std::map<Backend*, std::unique_ptr<ProfiledBackend>>();  // never freed, on purpose
  std::lock_guard lock(mutex);
  std::unique_ptr<ProfiledBackend>& w = (*wrappers)[&real];
  if (!w) w = std::make_unique<ProfiledBackend>(real);
  return *w;
}

}  // namespace ld
