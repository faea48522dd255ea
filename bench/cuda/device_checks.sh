#!/usr/bin/env bash
# The CUDA checks for one short GPU window (about 15 minutes of device time, all steps together):
#   1. configure + build with LIANDAN_CUDA=ON (release flags, -j16) into build/cuda-device;
#   2. ctest -L "cuda|dist": every CUDA kernel and op against the CPU backend, and the
#      distributed tests (NCCL ones where built);
#   3. a GPT-2 124M-shaped training step on CUDA: pending until the trainer runs on a device;
#   4. microbenchmarks (bench/cuda/cuda_bench.cpp): bf16 and fp32 GEMM at 4096^3, attention
#      forward/backward at B=8 H=12 T=1024 D=64 causal, and PyTorch's numbers for the same shapes
#      when this machine's torch has CUDA.
# Writes the summary to $OUT/cuda_checks.md (and logs beside it); $OUT defaults to /tmp/cuda_checks.
# Steps run on even if one fails; the exit status is non-zero when the build or a test failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/cuda_checks}
mkdir -p "$OUT"
report="$OUT/cuda_checks.md"
build=${BUILD_DIR:-build/cuda-device}  # BUILD_DIR=build/cuda reuses a local build
jobs=${JOBS:-16}
status=0

section() { printf '\n## %s\n\n' "$1" >>"$report"; }
now() { date +%s; }

{
  echo "# CUDA device checks ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
  /usr/local/cuda/bin/nvcc --version 2>&1 | tail -1
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus uncommitted changes, if any)"
  echo '```'
} >"$report"

section "Build (LIANDAN_CUDA=ON, -j$jobs)"
t0=$(now)
if cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLIANDAN_WERROR=ON -DLIANDAN_CUDA=ON \
    >"$OUT/configure.log" 2>&1 && cmake --build "$build" -j"$jobs" >"$OUT/build.log" 2>&1; then
  echo "built in $(($(now) - t0)) s" >>"$report"
else
  echo "**build failed** after $(($(now) - t0)) s; last lines:" >>"$report"
  { echo '```'; tail -30 "$OUT/configure.log" "$OUT/build.log" 2>/dev/null; echo '```'; } >>"$report"
  exit 1
fi

section 'Tests: ctest -L "cuda|dist"'
t0=$(now)
ctest --test-dir "$build" -L "cuda|dist" --output-on-failure -j4 --timeout 600 >"$OUT/ctest.log" 2>&1 || status=1
{
  echo "ran in $(($(now) - t0)) s; skipped: $(grep -c '\*\*\*Skipped' "$OUT/ctest.log")"
  echo '```'
  grep -E "tests passed|tests failed" "$OUT/ctest.log"
  sed -n '/The following tests FAILED/,/Errors while running/p' "$OUT/ctest.log" | head -40
  echo '```'
  # a skipped CUDA test on a GPU machine means the device was not usable: say so loudly
  if grep -q 'CudaTest.*\*\*\*Skipped' "$OUT/ctest.log"; then
    echo "**CUDA tests skipped: no usable device** ($(grep -m1 -o 'no CUDA device: .*' "$build/Testing/Temporary/LastTest.log"))"
    status=1
  fi
} >>"$report"

section "GPT-2 124M training step on CUDA"
echo "pending: the trainer does not run on a CUDA device yet (parameters, optimizer state and the data loader live on the CPU); the step time is measured here once it does." >>"$report"

section "Microbenchmarks (liandan, bench/cuda/cuda_bench.cpp)"
"$build/bench/cuda/liandan_bench_cuda" >"$OUT/bench.log" 2>&1 || status=1
cat "$OUT/bench.log" >>"$report"

section "PyTorch on the same shapes"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  python3 - >>"$report" 2>&1 <<'PY'
import time, torch
import torch.nn.functional as F

def bench(fn, iters):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e3

print("| benchmark (torch %s) | ms | TFLOP/s |" % torch.__version__)
print("|---|---|---|")
n = 4096
for name, dtype in [("gemm bf16 4096^3", torch.bfloat16), ("gemm fp32 (no TF32) 4096^3", torch.float32)]:
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    ms = bench(lambda: a @ b, 20)
    print("| %s | %.3f | %.1f |" % (name, ms, 2 * n**3 / (ms * 1e-3) / 1e12))
B, H, T, D = 8, 12, 1024, 64
flops = 4 * B * H * T * T * D / 2
for dtype in (torch.float32, torch.bfloat16):
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype) for _ in range(3))
    ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 10)
    print("| attention fwd %s causal B=8 H=12 T=1024 D=64 | %.3f | %.1f |" % (str(dtype)[6:], ms, flops / (ms * 1e-3) / 1e12))
PY
else
  echo "torch with CUDA is not available on this machine: no PyTorch comparison." >>"$report"
fi

echo >>"$report"
echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED)" >>"$report"
cat "$report"
exit $status
