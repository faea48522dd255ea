#!/usr/bin/env bash
# Greedy decode throughput with the KV cache, liandan against PyTorch 1.13 CPU, side by side
# (bench/README.md "Decode throughput"). liandan_bench_generate and the peer's bench_infer.py run the
# same protocol: batch B, a 16-token random prompt, 128 new tokens by argmax, 1 warm-up generation and
# 5 timed ones per process, medians.
#
#   bench/generate_vs_torch.sh [configs] [reps]
#     configs  comma-separated runs config[:batch[:dtype]] or a preset (default: all)
#              all   = tiny:1, tiny:8, tiny:1:bfloat16, small:1, small:8,
#                      gpt2-124M:1, gpt2-124M:8, gpt2-124M:1:bfloat16
#              quick = tiny:1, small:1, gpt2-124M:1
#              e.g. "tiny:1,gpt2-124M:1:bfloat16"
#     reps     alternating processes per side (default 5): liandan, peer, liandan, peer, ...
#
# Builds nothing. Environment:
#   LIANDAN_BENCH   path of liandan_bench_generate (default <repo>/build/release/bench/liandan_bench_generate)
#   PEER_DIR        folder of bench_infer.py (default <repo>/../shared/bench)
#   BENCH_THREADS   threads for both sides (default 2)
#   BENCH_TIMEOUT   seconds per process before it is stopped (default 900)
#   BENCH_OUT       folder for the raw JSON lines and logs (default: a new temporary folder)
#   LIANDAN_ENV     VAR=VALUE words for liandan's command only; default "OMP_WAIT_POLICY=PASSIVE", the
#                   peer's policy (bench/README.md: spinning workers on a loaded machine). Set it to
#                   "" for libgomp's default (spin, then sleep): faster on an idle machine.
#   LIANDAN_ARGS    extra words for liandan_bench_generate, e.g. "--head logits" (every logit computed,
#                   as before greedy decoding screened the lm_head); default none
#
# Prints a markdown table on stdout (progress on stderr): per run, each side's median over the
# processes of decode_tok_s_median, the min-max over the processes, and the ratio liandan / peer
# (> 1: liandan is faster).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
spec=${1:-all}
reps=${2:-5}
bin=${LIANDAN_BENCH:-$root/build/release/bench/liandan_bench_generate}
peer_dir=${PEER_DIR:-$(dirname "$root")/shared/bench}
threads=${BENCH_THREADS:-2}
timeout_s=${BENCH_TIMEOUT:-900}
liandan_env_words=${LIANDAN_ENV-OMP_WAIT_POLICY=PASSIVE}
read -r -a liandan_env <<<"$liandan_env_words"
liandan_args_words=${LIANDAN_ARGS-}
read -r -a liandan_args <<<"$liandan_args_words"
py=/usr/bin/python3  # Debian's interpreter: the python3 first on PATH has no torch

case "$spec" in
  all) spec="tiny:1,tiny:8,tiny:1:bfloat16,small:1,small:8,gpt2-124M:1,gpt2-124M:8,gpt2-124M:1:bfloat16" ;;
  quick) spec="tiny:1,small:1,gpt2-124M:1" ;;
esac
IFS=, read -r -a runs <<<"$spec"
for run in "${runs[@]}"; do
  IFS=: read -r c b d <<<"$run"
  if ! [[ $c =~ ^(tiny|small|gpt2-124M)$ && ${b:-1} =~ ^[1-9][0-9]*$ && ${d:-float32} =~ ^(float32|bfloat16)$ ]]; then
    echo "generate_vs_torch.sh: bad run '$run' (config[:batch[:dtype]], config tiny|small|gpt2-124M, dtype float32|bfloat16)" >&2
    exit 2
  fi
done
if ! [[ $reps =~ ^[1-9][0-9]*$ ]]; then
  echo "generate_vs_torch.sh: reps must be a positive integer, got '$reps'" >&2
  exit 2
fi
if [[ ! -x $bin ]]; then
  echo "generate_vs_torch.sh: $bin is not an executable; build it (cmake --build build/release --target liandan_bench_generate) or set LIANDAN_BENCH" >&2
  exit 2
fi
if [[ ! -f $peer_dir/bench_infer.py ]]; then
  echo "generate_vs_torch.sh: no bench_infer.py in $peer_dir (set PEER_DIR)" >&2
  exit 2
fi
if [[ ! -x $py ]] || ! $py -c 'import torch' 2>/dev/null; then
  echo "generate_vs_torch.sh: $py cannot import torch (install Debian's python3-torch)" >&2
  exit 2
fi

out=${BENCH_OUT:-$(mktemp -d /tmp/generate_vs_torch.XXXXXX)}
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
  printf '[generate_vs_torch] %-24s rep %d/%d %-7s rc=%d %6d ms\n' "$name" "$rep" "$reps" "$side" "$rc" \
    $((($(date +%s%N) - t0) / 1000000)) >&2
}

names=()
for run in "${runs[@]}"; do
  IFS=: read -r c b d <<<"$run"
  b=${b:-1} d=${d:-float32}
  name="$c:$b:$d"
  names+=("$name")
  for ((rep = 1; rep <= reps; rep++)); do
    run_side liandan "$name" "$rep" env "${liandan_env[@]}" \
      "$bin" --config "$c" --batch "$b" --dtype "$d" --threads "$threads" --tag "rep$rep" "${liandan_args[@]}"
    # the peer exactly as /work/shared/bench/README.md runs it at its best on this machine
    run_side peer "$name" "$rep" bash -c 'cd "$1" && shift && exec "$@"' _ "$peer_dir" \
      env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE "$py" bench_infer.py \
      --config "$c" --batch "$b" --dtype "$d" --threads "$threads" --tag "rep$rep"
  done
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "[generate_vs_torch] raw results in $out" >&2

"$py" - "$out" "$reps" "$threads" "$load_start" "$load_end" "$liandan_env_words" "$liandan_args_words" "${names[@]}" <<'PY'
"""Aggregates the per-process JSON lines into the markdown table."""
import json
import os
import statistics
import sys

out, reps, threads, load_start, load_end, liandan_env, liandan_args = sys.argv[1:8]
reps = int(reps)
names = sys.argv[8:]


def read_run(side, name, rep):
    """(decode_tok_s_median or None, why not, extra fields) of one process."""
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
    if result and "decode_tok_s_median" in result:
        return float(result["decode_tok_s_median"]), "", result
    try:
        rc = int(open(base + ".rc").read().strip())
    except (OSError, ValueError):
        rc = None
    try:
        err = [l.strip() for l in open(base + ".err", errors="replace") if l.strip()]
    except OSError:
        err = []
    why = "never ran" if rc is None else "timed out (BENCH_TIMEOUT)" if rc == 124 else f"exit code {rc}"
    return None, why + (": " + err[-1] if err else ""), {}


def fmt(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def cell(vals, whys):
    if not vals:
        return ("failed: " + whys[0]) if whys else "no result", None
    med = statistics.median(vals)
    text = f"{fmt(med)} ({fmt(min(vals))}-{fmt(max(vals))})"
    if len(vals) < reps:
        text += f" [{len(vals)}/{reps} runs]"
    return text, med


print(f"Decode tok/s (batch*127 / decode time), median over {reps} alternating processes per side "
      f"(min-max), {threads} threads; ratio = liandan / peer. loadavg {load_start} -> {load_end}"
      + f"; liandan env: {liandan_env or '(none)'}; liandan args: {liandan_args or '(none)'}\n")
print("| config | batch | dtype | liandan tok/s | peer tok/s | ratio | liandan ms/step | peer openblas |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    config, batch, dtype = name.split(":")
    side = {}
    for s in ("liandan", "peer"):
        vals, whys, extra = [], [], {}
        for rep in range(1, reps + 1):
            v, why, d = read_run(s, name, rep)
            if v is None:
                whys.append(why)
            else:
                vals.append(v)
                extra = d
        side[s] = (*cell(vals, whys), extra)
    (lt, lm, le), (pt, pm, pe) = side["liandan"], side["peer"]
    ratio = f"{lm / pm:.2f}" if lm and pm else "-"
    steps = [read_run("liandan", name, rep)[2].get("decode_ms_per_step_median") for rep in range(1, reps + 1)]
    steps = [x for x in steps if x is not None]
    ms = f"{statistics.median(steps):.3f}" if steps else ""
    print(f"| {config} | {batch} | {dtype} | {lt} | {pt} | {ratio} | {ms} | {pe.get('openblas_core', '')} |")
PY
