#!/usr/bin/env bash
# The CUDA checks for one short GPU window (about 15 minutes of device time, all steps together):
#   1. with .device_bundle/bundle.tar.xz (bench/cuda/make_device_bundle.sh, run here first and
#      carried: the lent machine's image has CUDA and PyTorch but not liandan's libraries): unpack
#      the prebuilt binaries and libraries; without it, configure + build with LIANDAN_CUDA=ON
#      (release flags, -j16) into build/cuda-device, on a machine that has the dependencies;
#   2. the bundle's cuda_tests, or ctest -L "cuda|dist" after a build: every CUDA kernel and op
#      against the CPU backend, training and generation on CUDA (and the distributed tests, NCCL
#      ones where built);
#   3. GPT-2 124M training on CUDA (T=1024, batch 32, else 8 when 32 does not fit; random tokens;
#      bf16 autocast; AdamW): tokens/s and MFU against 790 TFLOP/s through liandan_bench_train
#      --device cuda, and the peer's bench_train.py (torch.compile, sdpa, fused AdamW) when this
#      machine's torch has CUDA; then GPT-2 124M greedy decode at batch 1 and 32, fp32 and bf16
#      weights: liandan_bench_generate --device cuda beside the peer's bench_infer.py (when torch
#      has CUDA), one table with the ratio;
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
# One device call may run 600 s: every step's timeout is cut to what is left of BUDGET_S (default
# 560), so a slow step costs the later ones their time, not the whole report.
deadline=$(($(now) + ${BUDGET_S:-560}))
cap() {
  local left=$((deadline - $(now)))
  if [ "$left" -lt "$1" ]; then echo $((left > 5 ? left : 5)); else echo "$1"; fi
}

{
  echo "# CUDA device checks ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
  /usr/local/cuda/bin/nvcc --version 2>&1 | tail -1
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus uncommitted changes, if any)"
  echo '```'
} >"$report"

bundle=.device_bundle/bundle.tar.xz
peer=${PEER_BENCH:-}
if [ -f "$bundle" ]; then
  # Prebuilt here by bench/cuda/make_device_bundle.sh: the GPU machine's image lacks liandan's
  # libraries (oneDNN, yaml-cpp, ...) and cannot install them.
  section "Prebuilt bundle (bench/cuda/make_device_bundle.sh)"
  t0=$(now)
  unpacked=/tmp/liandan_bundle
  rm -rf "$unpacked" && mkdir -p "$unpacked" && tar -C "$unpacked" -xJf "$bundle"
  built_at=$(cat "$unpacked/built_at")
  build=build/cuda-bundle
  mkdir -p build && cp -r "$unpacked/build/." build/
  # the binaries read LIANDAN_SOURCE_DIR, LIANDAN_SHARED_DIR and LIANDAN_BINARY at the paths of the
  # checkout they were built in: point those paths here
  if [ "$(pwd -P)" != "$built_at" ] && [ ! -e "$built_at" ]; then mkdir -p "$(dirname "$built_at")" && ln -s "$PWD" "$built_at"; fi
  # LIANDAN_SHARED_DIR is <checkout>/../shared, and the kernel resolves that .. from the real
  # folder, not from the link
  shared_at=$(dirname "$(pwd -P)")/shared
  [ -e "$shared_at" ] || ln -s "$unpacked/shared" "$shared_at"
  # cuBLAS comes from this machine's CUDA 13 (the bundle leaves it out: hundreds of MB)
  cublas=$(find /usr/local /opt /usr/lib -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
  export LD_LIBRARY_PATH="$unpacked/lib${cublas:+:$(dirname "$cublas")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # the bundle's C++ runtime only where this machine's lacks what the binaries were built against
  stdcxx=$(ldconfig -p | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')
  if [ -z "$stdcxx" ] || ! grep -qa GLIBCXX_3.4.30 "$stdcxx"; then
    export LD_LIBRARY_PATH="$unpacked/lib/fallback:$LD_LIBRARY_PATH"
    stdcxx="the bundle's (this machine's: ${stdcxx:-none})"
  fi
  [ -n "$peer" ] || peer=$unpacked/peer
  {
    echo "bundle of commit $(cat "$unpacked/commit"), built at $built_at, unpacked in $(($(now) - t0)) s; cuBLAS: ${cublas:-not found}; libstdc++: $stdcxx; glibc: $(ldd --version | head -1)"
    unresolved=$(ldd "$build/tests/cuda/cuda_tests" "$build/bench/liandan_bench_train" | grep "not found" | sort -u)
    [ -z "$unresolved" ] || { echo "**unresolved libraries:**"; echo '```'; echo "$unresolved"; echo '```'; }
  } >>"$report"
  [ -z "$unresolved" ] || status=1

  section "Tests: cuda_tests (every CUDA kernel and op against the CPU, training and generation on CUDA)"
  t0=$(now)
  timeout "$(cap 300)" "$build/tests/cuda/cuda_tests" >"$OUT/ctest.log" 2>&1 || status=1
  {
    echo "ran in $(($(now) - t0)) s (the dist tests are not in the bundle: MPI/NCCL are not built there)"
    echo '```'
    grep -E '^\[  (PASSED|SKIPPED|FAILED) +\] [0-9]+ test' "$OUT/ctest.log"
    grep -E '^\[  FAILED  \] [A-Za-z]' "$OUT/ctest.log" | sort -u | head -40
    grep -E '^\[ INFO     \]' "$OUT/ctest.log" | sort -u | head -20  # e.g. which GEMM epilogue path ran
    echo '```'
    if grep -q '^\[  SKIPPED \] [0-9]' "$OUT/ctest.log"; then
      echo "**CUDA tests skipped: no usable device** ($(grep -m1 -o 'no CUDA device: .*' "$OUT/ctest.log"))"
      status=1
    fi
  } >>"$report"
else
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
  ctest --test-dir "$build" -L "cuda|dist" --output-on-failure -j4 --timeout "$(cap 600)" >"$OUT/ctest.log" 2>&1 || status=1
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
fi

section "GPT-2 124M on CUDA: training (T=1024, bf16 autocast, random tokens) and decode"
# The peer (/work/shared/bench): the bundle's copy, beside the checkout as ../shared, or where
# PEER_BENCH says.
for d in ../shared/bench /work/shared/bench; do [ -z "$peer" ] && [ -f "$d/bench_train.py" ] && peer=$d; done
torch_cuda=0
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null && torch_cuda=1
t0=$(now)
train_json="$OUT/train_gpt2.jsonl"
: >"$train_json"
trained_b=""
for B in 32 8; do  # 32 when it fits in memory, else 8
  if timeout "$(cap 240)" "$build/bench/liandan_bench_train" --config gpt2-124M --device cuda --batch "$B" \
      --precision bf16 --steps 10 --warmup 3 --peak-tflops 790 --tag "B$B" --profile 3 \
      >>"$train_json" 2>"$OUT/train_gpt2_b$B.log"; then
    trained_b=$B
    break
  fi
  echo "liandan at batch $B failed: $(tail -1 "$OUT/train_gpt2_b$B.log")" >>"$report"
  [ "$B" = 8 ] && status=1
done
if [ "$torch_cuda" = 1 ] && [ -n "$peer" ]; then
  for compile in --compile ""; do  # compiled, as the peer runs at its best; eager beside it
    timeout "$(cap 240)" python3 "$peer/bench_train.py" --config gpt2-124M-b32 --device cuda --dtype bfloat16 $compile \
      --steps 10 --tag "${compile:+compiled}${compile:-eager}" >>"$train_json" 2>>"$OUT/train_peer.log" ||
      echo "peer bench_train.py $compile failed: $(tail -1 "$OUT/train_peer.log")" >>"$report"
  done
  for dtype in float32 bfloat16; do
    for batch in 1 32; do
      timeout "$(cap 90)" python3 "$peer/bench_infer.py" --config gpt2-124M --device cuda --dtype "$dtype" --batch "$batch" \
        >>"$OUT/infer_peer.jsonl" 2>>"$OUT/infer_peer.log" ||
        echo "peer bench_infer.py --dtype $dtype --batch $batch failed" >>"$report"
    done
  done
else
  echo "no peer comparison: torch with CUDA ($torch_cuda) and the peer's bench folder (${peer:-not found}) are both needed." >>"$report"
fi
# liandan's decode on the device: weights (f32, or bf16 widened per product) and the KV cache there.
for dtype in float32 bfloat16; do
  for batch in 1 32; do
    timeout "$(cap 90)" "$build/bench/liandan_bench_generate" --config gpt2-124M --device cuda --dtype "$dtype" \
      --batch "$batch" --reps 5 >>"$OUT/infer_liandan.jsonl" 2>>"$OUT/infer_liandan.log" || {
      echo "liandan_bench_generate --dtype $dtype --batch $batch failed: $(tail -1 "$OUT/infer_liandan.log")" >>"$report"
      status=1
    }
  done
done
python3 - "$train_json" "$OUT/infer_peer.jsonl" "$OUT/infer_liandan.jsonl" >>"$report" 2>&1 <<'PY'
import json, os, sys
def rows(path):
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out
print("| program | B | precision | tokens/s | TFLOP/s | MFU (790) | median step s | loss first -> last |")
print("|---|---|---|---|---|---|---|---|")
for j in rows(sys.argv[1]):
    tflops = j.get("achieved_tflops") or 0
    print("| %s %s | %s | %s | %.0f | %.1f | %.1f%% | %.3f | %.3f -> %.3f |" % (
        j.get("program", "torch"), j.get("tag", ""), j.get("B"), j.get("precision", j.get("dtype")), j["tokens_per_s"],
        tflops, 100 * tflops / 790, j["median_step_s"], j.get("loss_first", float("nan")),
        j.get("loss_last", float("nan"))))
# Decode: one row per (dtype, batch), liandan beside the peer; ratio = liandan tok/s / torch tok/s.
peer = {(j.get("dtype"), j.get("batch")): j for j in rows(sys.argv[2])}
ours = {(j.get("dtype"), j.get("batch")): j for j in rows(sys.argv[3])}
def cell(j, key, fmt):
    return fmt % j[key] if j and key in j else "-"
print()
print("| decode gpt2-124M on cuda: dtype | batch | liandan tok/s | torch tok/s | liandan / torch | liandan ms/step | torch ms/step |")
print("|---|---|---|---|---|---|---|")
for key in sorted(set(peer) | set(ours), key=lambda k: (k[0] != "float32", k[1] or 0)):
    p, o = peer.get(key), ours.get(key)
    ratio = "%.2fx" % (o["decode_tok_s_median"] / p["decode_tok_s_median"]) if o and p else "-"
    print("| %s | %s | %s | %s | %s | %s | %s |" % (key[0], key[1], cell(o, "decode_tok_s_median", "%.0f"),
          cell(p, "decode_tok_s_median", "%.0f"), ratio, cell(o, "decode_ms_per_step_median", "%.2f"),
          cell(p, "decode_ms_per_step_median", "%.2f")))
print()
print("bfloat16: the peer casts weights and KV cache to bf16; liandan keeps bf16 weights and widens them to f32 "
      "for each product (Backend::linear_bf16), with f32 activations and KV cache.")
PY
if [ -n "$trained_b" ]; then  # --profile 3: three more steps, not in tokens/s, each kernel timed alone
  echo "" >>"$report"
  grep -m1 "where a step's time goes" "$OUT/train_gpt2_b$trained_b.log" >>"$report"
  echo "" >>"$report"
  grep -E '^\|' "$OUT/train_gpt2_b$trained_b.log" >>"$report"
fi
echo "(section took $(($(now) - t0)) s)" >>"$report"

section "Microbenchmarks (liandan, bench/cuda/cuda_bench.cpp)"
timeout "$(cap 120)" "$build/bench/cuda/liandan_bench_cuda" >"$OUT/bench.log" 2>&1 || status=1
cat "$OUT/bench.log" >>"$report"

section "PyTorch on the same shapes"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  timeout "$(cap 90)" python3 - >>"$report" 2>&1 <<'PY'
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
