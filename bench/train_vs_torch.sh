#!/usr/bin/env bash
# Training-step throughput (forward, cross-entropy, backward, AdamW, zero_grad), liandan against
# PyTorch 1.13 CPU, side by side (bench/README.md "Training step"). liandan_bench_train and the peer's
# bench_train.py run the same configs and protocol: random tokens, 3 warm-up steps and 10 timed ones
# per process, tokens/s from the median step time.
#
#   bench/train_vs_torch.sh [--reps N] [--configs tiny,small,gpt2-124M] [--precision fp32|bf16|both]
#                           [--build DIR | --no-build] [--quick]
#     --reps N       alternating processes per side and precision (default 5)
#     --configs      comma-separated configs (default tiny,small,gpt2-124M)
#     --precision    fp32: liandan fp32 vs the peer's float32; bf16: liandan bf16 vs the peer's
#                    --dtype bfloat16 (autocast); both (default): the two, plus liandan bf16 vs the
#                    peer's float32 (the bf16 target is stated against both)
#     --build DIR    build liandan_bench_train in DIR first (default build/release; configured with
#                    the release preset when DIR has no CMakeCache.txt)
#     --no-build     use the binary as it is (LIANDAN_BENCH, or DIR/bench/liandan_bench_train)
#     --quick        1 rep, tiny only: checks that the script and both programs work
# Per config and rep the order is liandan fp32, peer float32, liandan bf16, peer bfloat16, so drift in
# the machine's speed hits both programs equally.
#
# Environment:
#   LIANDAN_BENCH   path of liandan_bench_train (default DIR/bench/liandan_bench_train)
#   PEER_DIR        folder of bench_train.py (default <repo>/../shared/bench)
#   BENCH_THREADS   threads for both sides (default 2)
#   BENCH_TIMEOUT   seconds per process before it is stopped (default 900)
#   BENCH_OUT       folder for the raw JSON lines and logs (default: a new temporary folder)
#   LIANDAN_ENV     VAR=VALUE words for liandan's command only; default "OMP_WAIT_POLICY=PASSIVE", the
#                   peer's policy (spinning workers on a loaded machine); "" for libgomp's default.
#
# Prints a markdown table on stdout (progress on stderr): per config and precision, each side's
# median over the processes of tokens_per_s with the min-max, the ratio of the medians liandan / peer
# (> 1: liandan is faster), and each side's median peak RSS.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
reps=5
configs=tiny,small,gpt2-124M
precision=both
build_dir=$root/build/release
build=1

die() {
  echo "train_vs_torch.sh: $*" >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --reps) reps=${2-}; shift 2 || die "--reps needs a value" ;;
    --configs) configs=${2-}; shift 2 || die "--configs needs a value" ;;
    --precision) precision=${2-}; shift 2 || die "--precision needs a value" ;;
    --build) build_dir=${2-}; shift 2 || die "--build needs a folder" ;;
    --no-build) build=0; shift ;;
    --quick) reps=1 configs=tiny; shift ;;
    -h | --help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$reps'"
IFS=, read -r -a config_list <<<"$configs"
for c in "${config_list[@]}"; do
  [[ $c =~ ^(tiny|small|gpt2-124M)$ ]] || die "bad config '$c' (tiny, small, gpt2-124M)"
done
case "$precision" in
  fp32) sides=(fp32) ;;
  bf16) sides=(bf16) ;;
  both) sides=(fp32 bf16) ;;
  *) die "--precision must be fp32, bf16 or both, got '$precision'" ;;
esac

bin=${LIANDAN_BENCH:-$build_dir/bench/liandan_bench_train}
peer_dir=${PEER_DIR:-$(dirname "$root")/shared/bench}
threads=${BENCH_THREADS:-2}
timeout_s=${BENCH_TIMEOUT:-900}
liandan_env_words=${LIANDAN_ENV-OMP_WAIT_POLICY=PASSIVE}
read -r -a liandan_env <<<"$liandan_env_words"
py=/usr/bin/python3  # Debian's interpreter: the python3 first on PATH has no torch

if ((build)) && [[ -z ${LIANDAN_BENCH:-} ]]; then
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    cmake -S "$root" --preset release -B "$build_dir" >&2 || die "configuring $build_dir failed"
  fi
  cmake --build "$build_dir" --target liandan_bench_train >&2 || die "building liandan_bench_train in $build_dir failed"
fi
[[ -x $bin ]] || die "$bin is not an executable; build it (--build DIR) or set LIANDAN_BENCH"
[[ -f $peer_dir/bench_train.py ]] || die "no bench_train.py in $peer_dir (set PEER_DIR)"
if [[ ! -x $py ]] || ! $py -c 'import torch' 2>/dev/null; then
  die "$py cannot import torch (install Debian's python3-torch)"
fi

out=${BENCH_OUT:-$(mktemp -d /tmp/train_vs_torch.XXXXXX)}
mkdir -p "$out"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# run_side <side> <name> <rep> <command...>: stdout -> <side>.<name>.<rep>.jsonl, stderr -> .err, exit code -> .rc
run_side() {
  local side=$1 name=$2 rep=$3
  shift 3
  local base="$out/$side.$name.$rep" t0 rc
  t0=$(date +%s%N)
  timeout --kill-after=10 "$timeout_s" "$@" >"$base.jsonl" 2>"$base.err"
  rc=$?
  echo "$rc" >"$base.rc"
  printf '[train_vs_torch] %-16s rep %d/%d %-7s rc=%d %7d ms\n' "$name" "$rep" "$reps" "$side" "$rc" \
    $((($(date +%s%N) - t0) / 1000000)) >&2
}

for c in "${config_list[@]}"; do
  for ((rep = 1; rep <= reps; rep++)); do
    for p in "${sides[@]}"; do
      dtype=float32
      [[ $p == bf16 ]] && dtype=bfloat16
      run_side liandan "$c:$p" "$rep" env "${liandan_env[@]}" \
        "$bin" --config "$c" --precision "$p" --threads "$threads" --tag "rep$rep"
      # the peer exactly as /work/shared/bench/README.md runs it at its best on this machine
      run_side peer "$c:$p" "$rep" bash -c 'cd "$1" && shift && exec "$@"' _ "$peer_dir" \
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE "$py" bench_train.py \
        --config "$c" --dtype "$dtype" --threads "$threads" --tag "rep$rep"
    done
  done
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "[train_vs_torch] raw results in $out" >&2

"$py" - "$out" "$reps" "$threads" "$load_start" "$load_end" "$liandan_env_words" "$configs" "${sides[@]}" <<'PY'
"""Aggregates the per-process JSON lines into the markdown table."""
import json
import os
import statistics
import sys

out, reps, threads, load_start, load_end, liandan_env, configs = sys.argv[1:8]
reps = int(reps)
sides = sys.argv[8:]


def read_run(side, name, rep):
    """(the JSON result or None, why not) of one process."""
    base = os.path.join(out, f"{side}.{name}.{rep}")
    result = None
    try:
        for raw in open(base + ".jsonl"):
            raw = raw.strip()
            if raw.startswith("{"):
                try:
                    result = json.loads(raw)
                except json.JSONDecodeError:
                    pass
    except OSError:
        pass
    if result and "tokens_per_s" in result:
        return result, ""
    try:
        rc = int(open(base + ".rc").read().strip())
    except (OSError, ValueError):
        rc = None
    try:
        err = [l.strip() for l in open(base + ".err", errors="replace") if l.strip()]
    except OSError:
        err = []
    why = "never ran" if rc is None else "timed out (BENCH_TIMEOUT)" if rc == 124 else f"exit code {rc}"
    return None, why + (": " + err[-1] if err else "")


def fmt(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def summary(side, name):
    """(tok/s cell, median tok/s or None, RSS cell, openblas core) over the reps."""
    results, whys = [], []
    for rep in range(1, reps + 1):
        r, why = read_run(side, name, rep)
        (results if r else whys).append(r or why)
    if not results:
        return ("failed: " + whys[0]) if whys else "no result", None, "", ""
    rates = [float(r["tokens_per_s"]) for r in results]
    med = statistics.median(rates)
    text = f"{fmt(med)} ({fmt(min(rates))}-{fmt(max(rates))})"
    if len(results) < reps:
        text += f" [{len(results)}/{reps} runs]"
    rss = statistics.median(float(r["peak_rss_mib"]) for r in results)
    return text, med, f"{rss:.0f}", results[-1].get("openblas_core", "")


print(f"Training step tok/s (B*T / median step time), median over {reps} alternating processes per side "
      f"(min-max), {threads} threads; ratio = liandan / peer. loadavg {load_start} -> {load_end}"
      + f"; liandan env: {liandan_env or '(none)'}\n")
print("| config | liandan | peer | liandan tok/s | peer tok/s | ratio | liandan RSS MiB | peer RSS MiB | peer openblas |")
print("|---|---|---|---|---|---|---|---|---|")
# (liandan precision, peer dtype, where the peer's runs are): bf16 is compared with both peer dtypes.
rows = []
if "fp32" in sides:
    rows.append(("fp32", "float32", "fp32"))
if "bf16" in sides:
    if "fp32" in sides:
        rows.append(("bf16", "float32", "fp32"))
    rows.append(("bf16", "bfloat16", "bf16"))
for config in configs.split(","):
    for mine, peer_dtype, peer_runs in rows:
        lt, lm, lrss, _ = summary("liandan", f"{config}:{mine}")
        pt, pm, prss, core = summary("peer", f"{config}:{peer_runs}")
        ratio = f"{lm / pm:.2f}" if lm and pm else "-"
        print(f"| {config} | {mine} | {peer_dtype} | {lt} | {pt} | {ratio} | {lrss} | {prss} | {core} |")
PY
