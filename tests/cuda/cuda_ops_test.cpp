// Every CUDA kernel against the CPU backend (the reference) on random inputs, then matmul,
// attention and cross-entropy through autograd on CUDA tensors against the same ops on the CPU.
// fp32 kernels agree to 1e-5 relative with a tight absolute floor (sums over k terms: a floor that
// grows with sqrt(k)); bf16/fp16 GEMM to 1e-2. Without a GPU every test here skips, saying so.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <utility>

#include "backend/cuda/device_allocator.hpp"
#include "cuda_test_util.hpp"
#include "test_util.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"

namespace ld::test {
namespace {

constexpr double kRtol = 1e-5, kAtol = 1e-6;

using Outputs = std::vector<std::pair<Shape, DType>>;
using Kernel = std::function<void(Backend&, const std::vector<Tensor>& in, const std::vector<Tensor>& out)>;

// Runs kernel on both backends: inputs given on the CPU (copied to the GPU), outputs zeroed on each.
// Returns {cpu outputs, gpu outputs}.
std::pair<std::vector<Tensor>, std::vector<Tensor>> on_both(const std::vector<Tensor>& inputs, const Outputs& outputs,
                                                            const Kernel& kernel) {
  std::vector<Tensor> in_gpu, out_cpu, out_gpu;
  for (const Tensor& t : inputs) in_gpu.push_back(t.defined() ? to_gpu(t) : Tensor());
  for (const auto& [shape, dtype] : outputs) {
    out_cpu.push_back(zeros(shape, dtype));
    out_gpu.push_back(zeros(shape, dtype, kGPU));
  }
  kernel(cpu_backend(), inputs, out_cpu);
  kernel(cuda_backend(0), in_gpu, out_gpu);
  cuda_backend(0).synchronize();
  return {out_cpu, out_gpu};
}

void expect_all_close(const std::pair<std::vector<Tensor>, std::vector<Tensor>>& r, double rtol, double atol,
                      const std::string& what) {
  for (size_t i = 0; i < r.first.size(); ++i)
    expect_close(r.second[i], r.first[i], rtol, atol, what + " output " + std::to_string(i));
}

const float* fp(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }
float* mp(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// --- memory, layout, filling, random

TEST_F(CudaTest, CopyRoundTripAndCachingAllocator) {
  Tensor x = randn({1000, 37}, &gen);
  expect_equal<float>(to_gpu(x), x, "host -> device -> host");
  const int64_t before = gpu().allocator().stats().system_allocations;
  for (int i = 0; i < 3; ++i) Tensor t = empty({1000, 37}, DType::f32, kGPU);  // freed each time
  EXPECT_LE(gpu().allocator().stats().system_allocations - before, 1) << "a freed block of that size is reused";
}

TEST_F(CudaTest, CopyStridedEveryDtypePairTransposedAndBroadcast) {
  const DType types[] = {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8, DType::u8};
  Tensor base = uniform({6, 9}, 0.0f, 120.0f, &gen);  // fits every type, fractions exercise rounding
  for (DType s : types)
    for (DType d : types) {
      Tensor src = base.to(s);
      const std::string what = std::string(dtype_name(s)) + " -> " + std::string(dtype_name(d));
      expect_close(to_gpu(src).transpose(0, 1).to(d), src.transpose(0, 1).to(d), 0, 0, what + " transposed");
      expect_close(to_gpu(src).narrow(1, 2, 5).unsqueeze(0).expand({3, 6, 5}).to(d),
                   src.narrow(1, 2, 5).unsqueeze(0).expand({3, 6, 5}).to(d), 0, 0, what + " sliced, broadcast");
    }
  Tensor special = from_vector<float>({NAN, INFINITY, -INFINITY, 1e-40f, 70000.0f, -0.0f, 3.14159f}, {7});
  for (DType d : {DType::bf16, DType::f16})
    expect_close(to_gpu(special).to(d), special.to(d), 0, 0, "specials to " + std::string(dtype_name(d)));
}

TEST_F(CudaTest, FillEveryDtype) {
  for (DType d : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::i8, DType::u8})
    expect_close(full({33, 5}, 3.7, d, kGPU), full({33, 5}, 3.7, d), 0, 0, "fill " + std::string(dtype_name(d)));
}

TEST_F(CudaTest, RandomFillAndDropoutFollowTheCpuPhiloxStream) {
  const int64_t n = 1001;  // a partial last block of 4
  auto r = on_both({}, {{{n}, DType::f32}, {{n}, DType::f32}, {{n}, DType::f32}},
                   [&](Backend& be, const std::vector<Tensor>&, const std::vector<Tensor>& out) {
                     be.random_fill(RandomKind::uniform, mp(out[0]), n, 42, 17, 0.0f, 1.0f);
                     be.random_fill(RandomKind::uniform, mp(out[1]), n, 42, 17, -2.0f, 3.0f);
                     be.random_fill(RandomKind::normal, mp(out[2]), n, 7, 3, 0.5f, 2.0f);
                   });
  expect_equal<float>(r.second[0], r.first[0], "uniform [0, 1): the same bits");
  expect_close(r.second[1], r.first[1], 1e-6, 1e-6, "uniform [-2, 3)");
  expect_close(r.second[2], r.first[2], 1e-5, 1e-5, "normal (Box-Muller: logf/cosf within ulps of the host's)");

  Tensor x = randn({n}, &gen);
  auto d = on_both({x}, {{{n}, DType::f32}}, [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
    be.dropout(n, fp(in[0]), 0.3f, 99, 5, mp(out[0]));
  });
  expect_equal<float>(d.second[0], d.first[0], "dropout mask and scale");
}

// --- elementwise

TEST_F(CudaTest, BinaryBroadcastAndStrided) {
  Tensor a = randn({4, 6}, &gen), b = uniform({6, 5}, 0.5f, 2.0f, &gen);
  const int64_t shape[3] = {4, 5, 6}, as[3] = {6, 0, 1}, bs[3] = {0, 1, 5};  // b read transposed
  for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div}) {
    auto r = on_both({a, b}, {{{4, 5, 6}, DType::f32}}, [&](Backend& be, const std::vector<Tensor>& in,
                                                           const std::vector<Tensor>& out) {
      be.binary(op, 3, shape, fp(in[0]), as, fp(in[1]), bs, mp(out[0]));
    });
    expect_all_close(r, kRtol, kAtol, "binary " + std::to_string(int(op)));
  }
}

TEST_F(CudaTest, UnaryForwardAndBackwardEveryOp) {
  const int64_t n = 2000;
  Tensor x = ops::mul(randn({n}, &gen), full({n}, 2.5)), pos = uniform({n}, 0.1f, 5.0f, &gen), dy = randn({n}, &gen);
  for (int o = 0; o <= int(UnaryOp::silu); ++o) {
    const UnaryOp op = UnaryOp(o);
    const Tensor& in = op == UnaryOp::log || op == UnaryOp::sqrt ? pos : x;
    auto r = on_both({in, dy}, {{{n}, DType::f32}, {{n}, DType::f32}},
                     [&](Backend& be, const std::vector<Tensor>& i, const std::vector<Tensor>& out) {
                       be.unary(op, n, fp(i[0]), mp(out[0]));
                       be.unary_backward(op, n, fp(i[0]), fp(out[0]), fp(i[1]), mp(out[1]));
                     });
    expect_all_close(r, kRtol, kAtol, "unary op " + std::to_string(o));
  }
}

TEST_F(CudaTest, AffineWhereSwiglu) {
  const int64_t n = 777;
  Tensor a = randn({n}, &gen), b = randn({n}, &gen), c = randn({n}, &gen);
  Tensor cond = from_vector<uint8_t>({1, 0, 0, 1, 1, 0, 1}, {7, 1});
  const int64_t shape[2] = {7, 111}, cs[2] = {1, 0}, xs[2] = {111, 1};
  auto r = on_both({a, b, c, cond}, {{{n}, DType::f32}, {{n}, DType::f32}, {{n}, DType::f32}, {{n}, DType::f32},
                                     {{n}, DType::f32}},
                   [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                     be.affine(n, fp(in[0]), -1.5f, 0.25f, mp(out[0]));
                     be.where(2, shape, in[3].data<uint8_t>(), cs, fp(in[0]), xs, fp(in[1]), xs, mp(out[1]));
                     be.swiglu_forward(n, fp(in[0]), fp(in[1]), mp(out[2]));
                     be.swiglu_backward(n, fp(in[0]), fp(in[1]), fp(in[2]), mp(out[3]), mp(out[4]));
                   });
  expect_all_close(r, kRtol, kAtol, "affine/where/swiglu");
}

// --- reductions

TEST_F(CudaTest, ReduceSumRowsColumnsAndMiddle) {
  for (auto [outer, n, inner] : {std::tuple<int64_t, int64_t, int64_t>{3, 1000, 1}, {3, 1000, 17}, {1, 2000, 300},
                                 {5, 1, 7}}) {
    Tensor x = randn({outer, n, inner}, &gen);
    auto r = on_both({x}, {{{outer, inner}, DType::f32}}, [&](Backend& be, const std::vector<Tensor>& in,
                                                               const std::vector<Tensor>& out) {
      be.reduce_sum(outer, n, inner, fp(in[0]), mp(out[0]));
    });
    expect_all_close(r, kRtol, 1e-5, "reduce_sum " + std::to_string(outer) + "x" + std::to_string(n) + "x" +
                                         std::to_string(inner));
  }
}

TEST_F(CudaTest, ArgmaxTopkScatterAddRows) {
  const int64_t rows = 6, cols = 1000, k = 7;
  // values rounded to 0.25 so ties are common; a NaN in row 2 (argmax: the first NaN wins)
  std::vector<float> v = ops::mul(randn({rows, cols}, &gen), full({rows, cols}, 4.0)).to_vector<float>();
  for (float& e : v) e = std::round(e) / 4.0f;
  v[2 * cols + 500] = NAN;
  v[2 * cols + 600] = NAN;
  Tensor x = from_vector(v, {rows, cols});
  auto am = on_both({x}, {{{rows}, DType::i64}}, [&](Backend& be, const std::vector<Tensor>& in,
                                                     const std::vector<Tensor>& out) {
    be.argmax(rows, cols, fp(in[0]), out[0].data<int64_t>());
  });
  expect_equal<int64_t>(am.second[0], am.first[0], "argmax");
  // topk: NaN ranks first (both NaNs of row 2 come out, by lower index), then the largest values
  Tensor y = from_vector(v, {rows, cols});
  auto tk = on_both({y}, {{{rows, k}, DType::f32}, {{rows, k}, DType::i64}},
                    [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                      be.topk(rows, cols, k, fp(in[0]), mp(out[0]), out[1].data<int64_t>());
                    });
  expect_equal<float>(tk.second[0], tk.first[0], "topk values");
  expect_equal<int64_t>(tk.second[1], tk.first[1], "topk indices (ties: lower index first)");

  Tensor index = from_vector<int64_t>({0, 3, 3, 9, 1, 1, 1, 0}, {2, 4}), src = randn({2, 4}, &gen);
  auto sa = on_both({index, src}, {{{2, 10}, DType::f32}}, [&](Backend& be, const std::vector<Tensor>& in,
                                                                const std::vector<Tensor>& out) {
    be.scatter_add_rows(2, 10, 4, in[0].data<int64_t>(), fp(in[1]), mp(out[0]));
  });
  expect_all_close(sa, kRtol, kAtol, "scatter_add_rows (repeated indices)");
}

// --- matrix products

struct GemmCase {
  bool ta, tb;
  int64_t m, n, k, batch;
  bool share_b;  // B shared by every batch item (stride 0)
  float alpha, beta;
  bool bias;  // GemmArgs::bias: the epilogue for one item, written before the product for a batch
};

void check_gemm(Generator& gen, const GemmCase& c, ComputePrecision precision, double rtol, double atol) {
  const int64_t pad = 3;  // leading dims larger than the rows: sliced operands
  const int64_t a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k, b_rows = c.tb ? c.n : c.k,
                b_cols = c.tb ? c.k : c.n;
  const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = c.n + pad;
  Tensor a = randn({c.batch, a_rows, lda}, &gen), b = randn({c.share_b ? 1 : c.batch, b_rows, ldb}, &gen);
  Tensor c0 = randn({c.batch, c.m, ldc}, &gen), bias = randn({c.n}, &gen);
  std::vector<Tensor> cpu_out{c0.clone()}, gpu_out{to_gpu(c0)};
  Tensor ag = to_gpu(a), bg = to_gpu(b), bias_g = to_gpu(bias);
  auto run = [&](Backend& be, const Tensor& ta, const Tensor& tb, const Tensor& tc) {
    GemmArgs g;
    if (c.bias) g.bias = fp(&be == &cpu_backend() ? bias : bias_g);
    g.trans_a = c.ta, g.trans_b = c.tb, g.m = c.m, g.n = c.n, g.k = c.k, g.alpha = c.alpha, g.beta = c.beta;
    g.a = fp(ta), g.lda = lda, g.b = fp(tb), g.ldb = ldb, g.c = mp(tc), g.ldc = ldc, g.batch = c.batch;
    g.stride_a = a_rows * lda, g.stride_b = c.share_b ? 0 : b_rows * ldb, g.stride_c = c.m * ldc;
    g.precision = precision;
    be.gemm(g);
  };
  run(cpu_backend(), a, b, cpu_out[0]);
  run(cuda_backend(0), ag, bg, gpu_out[0]);
  expect_close(gpu_out[0], cpu_out[0], rtol, atol * std::sqrt(double(std::max<int64_t>(c.k, 1))),
               "gemm ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " m=" + std::to_string(c.m) +
                   " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " batch=" + std::to_string(c.batch) +
                   " bias=" + std::to_string(c.bias) + " precision=" + std::to_string(int(precision)));
}

const GemmCase kGemmCases[] = {
    {false, false, 37, 29, 53, 1, false, 1.0f, 0.0f, false}, {false, true, 64, 48, 96, 1, false, 1.0f, 1.0f, false},
    {true, false, 33, 65, 17, 1, false, 0.5f, 0.0f, false},  {true, true, 8, 100, 40, 1, false, 1.0f, -0.5f, false},
    {false, true, 20, 24, 32, 5, false, 1.0f, 0.0f, false},  {false, false, 20, 24, 32, 4, true, 1.0f, 0.0f, false},
    {false, false, 5, 6, 0, 2, false, 1.0f, 0.5f, false},    {false, true, 64, 48, 96, 1, false, 1.0f, 0.0f, true},
    {false, false, 37, 29, 53, 1, false, 0.5f, 1.0f, true},  {false, true, 20, 24, 32, 3, false, 1.0f, 0.5f, true},
    {false, false, 5, 6, 0, 2, false, 1.0f, 0.5f, true},
};

TEST_F(CudaTest, GemmF32EveryTransposeBatchedSharedAndK0) {
  for (const GemmCase& c : kGemmCases) check_gemm(gen, c, ComputePrecision::f32, kRtol, 1e-6);
}

TEST_F(CudaTest, GemmBf16AndFp16AccumulateInF32) {
  for (const GemmCase& c : kGemmCases) {
    check_gemm(gen, c, ComputePrecision::bf16, 1e-2, 1e-3);
    check_gemm(gen, c, ComputePrecision::fp16, 1e-2, 1e-3);
  }
}

// Operands given already in 16 bits (GemmArgs::a_half / b_half): read in place when their rows are
// 16-byte aligned (ld a multiple of 8), copied otherwise; either way the product of the same rounded
// values as from the f32 operands (to f32 rounding: another ld may pick another algorithm).
TEST_F(CudaTest, GemmHalfOperandsInPlaceOrRepacked) {
  for (ComputePrecision p : {ComputePrecision::bf16, ComputePrecision::fp16})
    for (int64_t pad : {0, 3}) {
      const int64_t m = 40, n = 24, k = 56 + pad, batch = 3, lda = k + pad, ldb = n + pad;
      Tensor a = randn({batch, m, lda}, &gen), b = randn({batch, k, ldb}, &gen);
      const DType half = half_dtype(p);
      Tensor ag = to_gpu(a), bg = to_gpu(b), a16 = to_gpu(a.to(half)), b16 = to_gpu(b.to(half));
      Tensor from_f32 = zeros({batch, m, n}, DType::f32, kGPU), from_half = zeros({batch, m, n}, DType::f32, kGPU);
      Tensor cpu_out = zeros({batch, m, n});
      GemmArgs g;
      g.m = m, g.n = n, g.k = k, g.batch = batch, g.precision = p;
      g.lda = lda, g.ldb = ldb, g.ldc = n, g.stride_a = m * lda, g.stride_b = k * ldb, g.stride_c = m * n;
      g.a = fp(a), g.b = fp(b), g.c = mp(cpu_out);
      cpu_backend().gemm(g);
      g.a = fp(ag), g.b = fp(bg), g.c = mp(from_f32);
      cuda_backend(0).gemm(g);
      g.a = g.b = nullptr;
      g.a_half = static_cast<const uint16_t*>(a16.raw()), g.b_half = static_cast<const uint16_t*>(b16.raw());
      g.c = mp(from_half);
      cuda_backend(0).gemm(g);
      const std::string what = "half operands pad=" + std::to_string(pad) + " precision=" + std::to_string(int(p));
      expect_close(from_half, from_f32.to(kCPU), kRtol, 1e-5 * std::sqrt(double(k)), what + " vs f32 operands");
      expect_close(from_half, cpu_out, 1e-2, 1e-3 * std::sqrt(double(k)), what + " vs the CPU");
    }
}

// GemmArgs::epilogue and c_half against the CPU (tests/ops/gemm_epilogue_test.cpp): bf16 goes through
// cuBLASLt's GELU_AUX_BIAS / DGELU epilogues where it offers them, f32 and fp16 through the same
// passes as the CPU. n = 40 keeps rows 16-byte aligned (the fused path); n = 30 does not (the passes).
TEST_F(CudaTest, GemmGeluEpiloguesAndHalfOutput) {
  for (ComputePrecision p : {ComputePrecision::f32, ComputePrecision::bf16, ComputePrecision::fp16})
    for (int64_t n : {40, 30})
      for (GemmEpilogue e : {GemmEpilogue::gelu_tanh, GemmEpilogue::dgelu_tanh, GemmEpilogue::none})
        for (bool half_out : {false, true}) {
          if ((half_out && p == ComputePrecision::f32) || (!half_out && e == GemmEpilogue::none)) continue;
          const int64_t m = 48, k = 64;
          Tensor a = randn({m, k}, &gen), b = randn({n, k}, &gen), bias = randn({n}, &gen), aux = randn({m, n}, &gen);
          const DType out_type = !half_out ? DType::f32 : half_dtype(p);
          std::vector<Tensor> results;
          for (Device d : {kCPU, kGPU}) {
            Tensor ad = a.to(d), bd = b.to(d), bias_d = bias.to(d), aux_d = aux.clone().to(d);
            Tensor out = zeros({m, n}, out_type, d);
            GemmArgs g;
            g.trans_b = true, g.m = m, g.n = n, g.k = k, g.precision = p;
            g.a = fp(ad), g.lda = k, g.b = fp(bd), g.ldb = k, g.ldc = n;
            g.epilogue = e, g.aux = mp(aux_d);
            if (e == GemmEpilogue::gelu_tanh) g.bias = fp(bias_d);
            if (half_out)
              g.c_half = static_cast<uint16_t*>(out.raw());
            else
              g.c = mp(out);
            d == kCPU ? cpu_backend().gemm(g) : cuda_backend(0).gemm(g);
            if (d == kGPU && p == ComputePrecision::bf16 && n == 40)  // which path cuBLASLt allowed
              std::cout << "[ INFO     ] bf16 epilogue " << int(e) << " half_out " << half_out << ": "
                        << cuda_backend(0).last_epilogue_path() << "\n";
            results.push_back(out.to(DType::f32));
            results.push_back(aux_d);
          }
          const double rtol = p == ComputePrecision::f32 ? kRtol : 2e-2;
          const double atol = p == ComputePrecision::f32 ? 1e-5 * std::sqrt(double(k)) : 1e-2;
          const std::string what = "epilogue " + std::to_string(int(e)) + " precision " + std::to_string(int(p)) +
                                   " n " + std::to_string(n) + " half_out " + std::to_string(half_out);
          expect_close(results[2], results[0], rtol, atol, what + ": C");
          expect_close(results[3], results[1], rtol, atol, what + ": aux");
        }
}

TEST_F(CudaTest, LinearBf16BothWeightLayouts) {
  const int64_t m = 19, n = 70, k = 45;
  Tensor x = randn({m, k}, &gen), w = randn({n, k}, &gen).to(DType::bf16), y0 = randn({m, n}, &gen);
  for (bool w_kn : {false, true})
    for (bool accumulate : {false, true}) {
      auto r = on_both({x, w, y0}, {{{m, n}, DType::f32}}, [&](Backend& be, const std::vector<Tensor>& in,
                                                               const std::vector<Tensor>& out) {
        be.copy_strided(1, std::vector<int64_t>{m * n}.data(), DType::f32, in[2].raw(), std::vector<int64_t>{1}.data(),
                        DType::f32, out[0].raw(), std::vector<int64_t>{1}.data());
        be.linear_bf16(m, n, k, fp(in[0]), static_cast<const uint16_t*>(in[1].raw()), w_kn, mp(out[0]), accumulate);
      });
      expect_all_close(r, kRtol, 1e-5, "linear_bf16 w_kn=" + std::to_string(w_kn));
    }
}

// --- normalisation, softmax, loss

TEST_F(CudaTest, LayerNormAndRmsNormForwardBackwardWithResidual) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{67, 300}, {1000, 64}}) {
    Tensor x = ops::add(randn({rows, cols}, &gen), full({rows, cols}, 3.0)), res = randn({rows, cols}, &gen);
    Tensor w = randn({cols}, &gen), b = randn({cols}, &gen), dy = randn({rows, cols}, &gen);
    for (bool residual : {false, true}) {
      auto ln = on_both({x, residual ? res : Tensor(), w, b, dy},
                        {{{rows, cols}, DType::f32}, {{rows, cols}, DType::f32}, {{rows}, DType::f32},
                         {{rows}, DType::f32}, {{rows, cols}, DType::f32}, {{cols}, DType::f32}, {{cols}, DType::f32}},
                        [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                          be.layernorm_forward(rows, cols, fp(in[0]), fp(in[1]), fp(in[2]), fp(in[3]), 1e-5f,
                                               mp(out[0]), mp(out[1]), mp(out[2]), mp(out[3]));
                          const float* normed = in[1].defined() ? fp(out[0]) : fp(in[0]);
                          be.layernorm_backward(rows, cols, fp(in[4]), normed, fp(in[2]), fp(out[2]), fp(out[3]),
                                                mp(out[4]), mp(out[5]), mp(out[6]));
                        });
      expect_all_close(ln, 1e-5, 1e-5, "layernorm rows=" + std::to_string(rows) + " residual=" + std::to_string(residual));
      auto rms = on_both({x, residual ? res : Tensor(), w, dy},
                         {{{rows, cols}, DType::f32}, {{rows, cols}, DType::f32}, {{rows}, DType::f32},
                          {{rows, cols}, DType::f32}, {{cols}, DType::f32}},
                         [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                           be.rmsnorm_forward(rows, cols, fp(in[0]), fp(in[1]), fp(in[2]), 1e-6f, mp(out[0]),
                                              mp(out[1]), mp(out[2]));
                           const float* normed = in[1].defined() ? fp(out[0]) : fp(in[0]);
                           be.rmsnorm_backward(rows, cols, fp(in[3]), normed, fp(in[2]), fp(out[2]), mp(out[3]),
                                               mp(out[4]));
                         });
      expect_all_close(rms, 1e-5, 1e-5, "rmsnorm rows=" + std::to_string(rows) + " residual=" + std::to_string(residual));
    }
  }
}

TEST_F(CudaTest, SoftmaxAndLogSoftmaxForwardBackward) {
  const int64_t rows = 9, cols = 1500;
  Tensor x = ops::mul(randn({rows, cols}, &gen), full({rows, cols}, 3.0)), dy = randn({rows, cols}, &gen);
  for (bool log : {false, true}) {
    auto r = on_both({x, dy}, {{{rows, cols}, DType::f32}, {{rows, cols}, DType::f32}},
                     [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                       be.softmax_forward(rows, cols, fp(in[0]), mp(out[0]), log);
                       be.softmax_backward(rows, cols, fp(out[0]), fp(in[1]), mp(out[1]), log);
                     });
    expect_all_close(r, kRtol, 1e-6, log ? "log_softmax" : "softmax");
  }
}

TEST_F(CudaTest, CrossEntropyForwardBackwardIgnoreIndexSmoothing) {
  const int64_t rows = 13, vocab = 5003;
  Tensor logits = ops::mul(randn({rows, vocab}, &gen), full({rows, vocab}, 2.0)), dloss = randn({rows}, &gen);
  std::vector<int64_t> t(rows);
  for (int64_t i = 0; i < rows; ++i) t[size_t(i)] = (i * 977) % vocab;
  t[3] = t[8] = -100;
  for (DType target_dtype : {DType::i64, DType::i32})
    for (float smoothing : {0.0f, 0.1f}) {
      Tensor targets = from_vector(t, {rows}).to(target_dtype);
      auto r = on_both({logits, targets, dloss}, {{{rows}, DType::f32}, {{rows}, DType::f32}, {{rows, vocab}, DType::f32}},
                       [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                         CrossEntropyArgs a;
                         a.rows = rows, a.vocab = vocab, a.logits = fp(in[0]), a.targets = in[1].raw();
                         a.target_dtype = target_dtype, a.label_smoothing = smoothing;
                         be.cross_entropy_forward(a, mp(out[0]), mp(out[1]));
                         be.cross_entropy_backward(a, fp(out[1]), fp(in[2]), mp(out[2]));
                       });
      expect_all_close(r, kRtol, 1e-6, "cross_entropy smoothing=" + std::to_string(smoothing));
    }
}

// An LM head's logits under autocast: bf16 or fp16 rows 5008 apart over a vocabulary of 5003, dlogits
// written in place; the padding columns stay as they were.
TEST_F(CudaTest, CrossEntropyOnHalfLogitsWithPaddedRowsInPlace) {
  const int64_t rows = 9, vocab = 5003, ld = 5008;
  std::vector<int64_t> t(rows);
  for (int64_t i = 0; i < rows; ++i) t[size_t(i)] = (i * 977) % vocab;
  t[4] = -100;
  const Tensor targets = from_vector(t, {rows}), dloss = randn({rows}, &gen);
  const Tensor targets_gpu = to_gpu(targets), dloss_gpu = to_gpu(dloss);
  for (DType dt : {DType::bf16, DType::f16})
    for (float smoothing : {0.0f, 0.1f}) {
      const std::string what = std::string(dtype_name(dt)) + " smoothing " + std::to_string(smoothing);
      Tensor cpu_logits = ops::cast(ops::scale(randn({rows, ld}, &gen), 2.0), dt);
      Tensor gpu_logits = to_gpu(cpu_logits);
      Tensor loss[2], lse[2];
      for (int side = 0; side < 2; ++side) {
        const bool on_gpu = side == 1;
        Backend& be = on_gpu ? static_cast<Backend&>(gpu()) : static_cast<Backend&>(cpu());
        Tensor& logits = on_gpu ? gpu_logits : cpu_logits;
        const Device dev = on_gpu ? kGPU : kCPU;
        CrossEntropyArgs a;
        a.rows = rows, a.vocab = vocab, a.ld = ld, a.logits = logits.raw(), a.logits_dtype = dt;
        a.targets = (on_gpu ? targets_gpu : targets).raw(), a.target_dtype = DType::i64;
        a.label_smoothing = smoothing;
        loss[side] = empty({rows}, DType::f32, dev), lse[side] = empty({rows}, DType::f32, dev);
        be.cross_entropy_forward(a, loss[side].data<float>(), lse[side].data<float>());
        be.cross_entropy_backward(a, lse[side].data<float>(), (on_gpu ? dloss_gpu : dloss).data<float>(),
                                  logits.raw());
      }
      expect_close(loss[1], loss[0], kRtol, 1e-6, "loss " + what);
      expect_close(lse[1], lse[0], kRtol, 1e-6, "lse " + what);
      // expf on the GPU and the CPU's differ in the last bits: dlogits may round to a neighbour
      expect_close(gpu_logits, cpu_logits, dt == DType::bf16 ? 8e-3 : 1e-3, 1e-6, "dlogits in place " + what);
    }
}

// --- embedding, rope, attention, optimizer

TEST_F(CudaTest, EmbeddingForwardBackwardRepeatedIds) {
  const int64_t vocab = 50, dim = 96;
  Tensor table = randn({vocab, dim}, &gen), dy = randn({12, dim}, &gen);
  for (DType id_dtype : {DType::i64, DType::i32}) {
    Tensor ids = from_vector<int64_t>({3, 7, 3, 49, 0, 3, 7, 12, 12, 12, 1, 2}, {12}).to(id_dtype);
    auto r = on_both({ids, table, dy}, {{{12, dim}, DType::f32}, {{vocab, dim}, DType::f32}},
                     [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                       be.embedding_forward(12, in[0].raw(), id_dtype, dim, fp(in[1]), mp(out[0]));
                       be.embedding_backward(12, in[0].raw(), id_dtype, vocab, dim, fp(in[2]), mp(out[1]));
                     });
    expect_all_close(r, kRtol, kAtol, "embedding");
  }
}

TEST_F(CudaTest, RopeLayoutsInversePartialRotaryLargePositions) {
  const int64_t B = 2, T = 5, H = 3, D = 16;
  Tensor x = randn({B, T, H, D}, &gen);
  Tensor pos_shared = from_vector<int64_t>({0, 1, 2, 30000, 65535}, {T});
  Tensor pos_batch = from_vector<int64_t>({4, 5, 6, 7, 8, 100, 200, 300, 400, 500}, {B, T});
  for (RopeLayout layout : {RopeLayout::half, RopeLayout::interleaved})
    for (bool inverse : {false, true})
      for (int64_t rotary : {D, int64_t(8)})
        for (bool per_batch : {false, true}) {
          auto r = on_both({x, per_batch ? pos_batch : pos_shared}, {{{B, T, H, D}, DType::f32}},
                           [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                             RopeArgs a;
                             a.batch = B, a.seq = T, a.heads = H, a.head_dim = D, a.rotary_dim = rotary;
                             a.positions = in[1].data<int64_t>(), a.pos_batch_stride = per_batch ? T : 0;
                             a.layout = layout, a.inverse = inverse;
                             be.rope(a, fp(in[0]), mp(out[0]));
                           });
          expect_all_close(r, kRtol, 1e-6, "rope");
        }
}

struct AttentionCase {
  int64_t batch, q_heads, kv_heads, q_len, kv_len, head_dim;
  bool causal, mask, strided_q;
};

void check_attention(Generator& gen, const AttentionCase& c) {
  const int64_t B = c.batch, Hq = c.q_heads, Hk = c.kv_heads, Tq = c.q_len, Tk = c.kv_len, D = c.head_dim;
  // q strided as the projections leave it: [B, T, H, D] seen as [B, H, T, D]
  Tensor q = c.strided_q ? randn({B, Tq, Hq, D}, &gen) : randn({B, Hq, Tq, D}, &gen);
  Tensor k = randn({B, Hk, Tk, D}, &gen), v = randn({B, Hk, Tk, D}, &gen), dout = randn({B, Hq, Tq, D}, &gen);
  Tensor mask = c.mask ? ops::mul(randn({B, 1, Tq, Tk}, &gen), full({B, 1, Tq, Tk}, 2.0)) : Tensor();
  if (c.mask) {  // fully masked keys too
    std::vector<float> m = mask.to_vector<float>();
    for (size_t i = 0; i < m.size(); i += 5) m[i] = -INFINITY;
    mask = from_vector(m, {B, 1, Tq, Tk});
  }
  auto r = on_both({q, k, v, dout, mask},
                   {{{B, Hq, Tq, D}, DType::f32}, {{B, Hq, Tq}, DType::f32}, {{B, Hq, Tq, D}, DType::f32},
                    {{B, Hk, Tk, D}, DType::f32}, {{B, Hk, Tk, D}, DType::f32}},
                   [&](Backend& be, const std::vector<Tensor>& in, const std::vector<Tensor>& out) {
                     AttentionArgs a;
                     a.batch = B, a.q_heads = Hq, a.kv_heads = Hk, a.q_len = Tq, a.kv_len = Tk, a.head_dim = D;
                     a.scale = float(1.0 / std::sqrt(double(D))), a.causal = c.causal;
                     const int64_t qs[3] = {Tq * Hq * D, D, Hq * D}, qc[3] = {Hq * Tq * D, Tq * D, D};
                     for (int i = 0; i < 3; ++i) {
                       a.q_stride[i] = c.strided_q ? qs[i] : qc[i];
                       a.o_stride[i] = qc[i];
                     }
                     const int64_t kvs[3] = {Hk * Tk * D, Tk * D, D};
                     for (int i = 0; i < 3; ++i) a.k_stride[i] = a.v_stride[i] = kvs[i];
                     if (c.mask) {
                       a.mask = fp(in[4]);
                       const int64_t ms[4] = {Tq * Tk, 0, Tk, 1};
                       for (int i = 0; i < 4; ++i) a.mask_stride[i] = ms[i];
                     }
                     be.attention_forward(a, fp(in[0]), fp(in[1]), fp(in[2]), mp(out[0]), mp(out[1]));
                     be.attention_backward(a, fp(in[0]), fp(in[1]), fp(in[2]), fp(out[0]), fp(in[3]), fp(out[1]),
                                           mp(out[2]), mp(out[3]), mp(out[4]));
                   });
  const std::string what = "attention B=" + std::to_string(B) + " Hq=" + std::to_string(Hq) + " Hkv=" +
                           std::to_string(Hk) + " Tq=" + std::to_string(Tq) + " Tk=" + std::to_string(Tk) +
                           " D=" + std::to_string(D) + " causal=" + std::to_string(c.causal);
  expect_close(r.second[0], r.first[0], kRtol, 1e-5, what + " out");
  expect_close(r.second[1], r.first[1], kRtol, 1e-5, what + " lse");
  for (int i = 2; i < 5; ++i) expect_close(r.second[size_t(i)], r.first[size_t(i)], 1e-4, 1e-5, what + " grad " + std::to_string(i));
}

TEST_F(CudaTest, AttentionForwardBackwardCausalGqaMaskDecodeStrided) {
  const AttentionCase cases[] = {
      {2, 4, 2, 45, 45, 64, true, false, false},  {1, 2, 2, 7, 50, 80, true, true, false},
      {1, 3, 1, 33, 70, 128, false, true, true},  {2, 2, 1, 1, 37, 64, true, false, false},
      {1, 2, 2, 40, 40, 256, true, false, true},  {1, 1, 1, 64, 64, 32, false, false, false},
  };
  for (const AttentionCase& c : cases) check_attention(gen, c);
}

// Buffers of several sizes in one call: one spanning several thread blocks (140000 > 65536), an empty
// one, and enough small ones (45 in all) for a second launch; weight decay and step differ per call.
TEST_F(CudaTest, AdamWStepOverManyBuffers) {
  std::vector<int64_t> sizes = {3001, 140000, 0, 5};
  while (sizes.size() < 45) sizes.push_back(7);
  struct Buffer {
    Tensor grad, cpu[3], gpu[3], gpu_grad;  // state: param, m, v
  };
  std::vector<Buffer> buffers;
  for (int64_t n : sizes) {
    Buffer b;
    b.grad = randn({n}, &gen);
    b.gpu_grad = to_gpu(b.grad);
    const Tensor state[3] = {randn({n}, &gen), randn({n}, &gen), uniform({n}, 0.0f, 1.0f, &gen)};
    for (int i = 0; i < 3; ++i) b.cpu[i] = state[i].clone(), b.gpu[i] = to_gpu(state[i]);
    buffers.push_back(b);
  }
  for (int64_t step = 1; step <= 3; ++step)
    for (int side = 0; side < 2; ++side) {
      std::vector<AdamWArgs> args;
      for (size_t k = 0; k < buffers.size(); ++k) {
        Buffer& b = buffers[k];
        Tensor* s = side == 0 ? b.cpu : b.gpu;
        AdamWArgs a;
        a.n = b.grad.numel(), a.param = mp(s[0]), a.grad = fp(side == 0 ? b.grad : b.gpu_grad), a.m = mp(s[1]),
        a.v = mp(s[2]);
        a.lr = 1e-2f, a.weight_decay = k % 2 ? 0.1f : 0.0f, a.grad_scale = 0.5f, a.step = step;
        args.push_back(a);
      }
      (side == 0 ? static_cast<Backend&>(cpu_backend()) : static_cast<Backend&>(cuda_backend(0))).adamw_step(args);
    }
  for (size_t k = 0; k < buffers.size(); ++k)
    for (int i = 0; i < 3; ++i)
      expect_close(buffers[k].gpu[i], buffers[k].cpu[i], kRtol, 1e-6,
                   "buffer " + std::to_string(k) + " adamw state " + std::to_string(i));
}

// The bf16 working copies (ops/working_weights.hpp): round_bf16 on the device gives the CPU's bits,
// to nearest and stochastically (the same Philox draw per element), and AdamW's fused write is the
// round_bf16 of the parameter it just updated, over buffers in two launches.
TEST_F(CudaTest, WorkingCopiesRoundAsTheCpuBitForBit) {
  const Tensor x = randn({100003}, &gen), x_gpu = to_gpu(x);
  for (uint64_t key : {uint64_t(0), uint64_t(0xabcdef12345ull)}) {
    Tensor on_cpu = empty({x.numel()}, DType::bf16), on_gpu = empty({x.numel()}, DType::bf16, kGPU);
    cpu().round_bf16(x.numel(), x.data<float>(), static_cast<uint16_t*>(on_cpu.raw()), key, 5);
    gpu().round_bf16(x.numel(), x_gpu.data<float>(), static_cast<uint16_t*>(on_gpu.raw()), key, 5);
    EXPECT_EQ(max_abs_diff(on_gpu.to(kCPU), on_cpu), 0.0f) << "key " << key;
  }
  std::vector<Tensor> params, grads, ms, vs, copies;
  std::vector<AdamWArgs> args;
  for (int k = 0; k < 40; ++k) {  // more than one launch's buffers
    const int64_t n = k == 0 ? 70001 : 9 + k;
    params.push_back(to_gpu(randn({n}, &gen))), grads.push_back(to_gpu(randn({n}, &gen)));
    ms.push_back(to_gpu(zeros({n}))), vs.push_back(to_gpu(zeros({n})));
    copies.push_back(empty({n}, DType::bf16, kGPU));
    AdamWArgs a;
    a.n = n, a.param = mp(params[k]), a.grad = fp(grads[k]), a.m = mp(ms[k]), a.v = mp(vs[k]), a.lr = 1e-2f;
    a.param_bf16 = static_cast<uint16_t*>(copies[k].raw());
    a.rounding_key = k % 2 ? 777 : 0, a.rounding_counter = uint64_t(100 * k);
    args.push_back(a);
  }
  gpu().adamw_step(args);
  for (size_t k = 0; k < args.size(); ++k) {
    const Tensor p = params[k].to(kCPU);
    Tensor want = empty({p.numel()}, DType::bf16);
    cpu().round_bf16(p.numel(), p.data<float>(), static_cast<uint16_t*>(want.raw()), args[k].rounding_key,
                     args[k].rounding_counter);
    EXPECT_EQ(max_abs_diff(copies[k].to(kCPU), want), 0.0f) << "buffer " << k;
  }
}

// --- ops through autograd on CUDA tensors

// A leaf copy of t on the device, requiring grad.
Tensor leaf(const Tensor& t, Device device) {
  Tensor out = t.detach().to(device).contiguous();
  out.set_requires_grad(true);
  return out;
}

// Runs f on CPU and GPU leaves, backward from sum(out * w), and compares outputs and gradients.
void check_op(const std::vector<Tensor>& inputs, const std::function<Tensor(const std::vector<Tensor>&)>& f,
              double rtol, double atol, const std::string& what) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& t : inputs) {
    const bool grad = is_floating(t.dtype());
    cpu_in.push_back(grad ? leaf(t, kCPU) : t);
    gpu_in.push_back(grad ? leaf(t, kGPU) : to_gpu(t));
  }
  Tensor out_cpu = f(cpu_in), out_gpu = f(gpu_in);
  ASSERT_EQ(out_gpu.device(), kGPU) << what << ": the op left the device";
  expect_close(out_gpu, out_cpu, rtol, atol, what + " forward");
  Generator g(77);
  Tensor w = randn(out_cpu.shape(), &g);
  ops::sum(ops::mul(out_cpu, w)).backward();
  ops::sum(ops::mul(out_gpu, to_gpu(w))).backward();
  for (size_t i = 0; i < inputs.size(); ++i)
    if (is_floating(inputs[i].dtype()))
      expect_close(gpu_in[i].grad(), cpu_in[i].grad(), rtol * 10, atol * 10, what + " grad of input " + std::to_string(i));
}

TEST_F(CudaTest, OpsMatmulAttentionCrossEntropyThroughAutograd) {
  check_op({randn({3, 40, 50}, &gen), randn({50, 30}, &gen)},
           [](const std::vector<Tensor>& t) { return ops::matmul(t[0], t[1]); }, kRtol, 1e-5, "matmul");
  check_op({randn({2, 4, 33, 64}, &gen), randn({2, 2, 33, 64}, &gen), randn({2, 2, 33, 64}, &gen)},
           [](const std::vector<Tensor>& t) { return ops::attention(t[0], t[1], t[2]); }, kRtol, 1e-5,
           "attention (causal, GQA)");
  std::vector<int64_t> targets{5, 100, -100, 999, 0, 42, 7};
  check_op({randn({7, 1000}, &gen), from_vector(targets, {7})},
           [](const std::vector<Tensor>& t) {
             ops::CrossEntropyOptions o;
             o.label_smoothing = 0.1;
             return ops::cross_entropy(t[0], t[1], o);
           },
           kRtol, 1e-6, "cross_entropy");
}

// The LM head's loss in chunks of 5 rows (3 chunks, the last short), in f32 and under bf16 autocast
// (x and W rounded once, dlogits rounded once per chunk for dx and dW), with a bias and ignored rows.
TEST_F(CudaTest, OpsLinearCrossEntropyInChunksThroughAutograd) {
  std::vector<int64_t> targets{5, 100, -100, 999, 0, 42, 7, 3, -100, 500, 1, 998};
  for (ops::ComputePrecision p : {ops::ComputePrecision::f32, ops::ComputePrecision::bf16}) {
    const bool half = p != ops::ComputePrecision::f32;
    check_op({randn({2, 6, 48}, &gen), ops::scale(randn({1000, 48}, &gen), 0.2), randn({1000}, &gen),
              from_vector(targets, {2, 6})},
             [p](const std::vector<Tensor>& t) {
               ops::AutocastScope autocast(p);
               return ops::linear_cross_entropy(t[0], t[1], t[2], t[3], {}, 5);
             },
             half ? 1e-3 : kRtol, half ? 1e-3 : 1e-5,
             "linear_cross_entropy " + std::string(ops::compute_precision_name(p)));
  }
}

}  // namespace
}  // namespace ld::test
