#!/usr/bin/env bash
# Single ops, liandan against PyTorch 1.13 CPU, side by side (bench/README.md).
#
#   bench/ops_vs_torch.sh [case] [reps]
#     case  gemm | attention | layernorm | cross_entropy | all   (default all)
#     reps  alternating runs per side (default 5): liandan, torch, liandan, torch, ... each in its own process
#
# Builds nothing. Environment:
#   LIANDAN_BENCH   path of liandan_bench_ops (default <repo>/build/release/bench/liandan_bench_ops)
#   BENCH_THREADS   threads for both sides (default 2)
#   BENCH_ARGS      passed to both programs, e.g. "--reps 10 --warmup 3" (their defaults)
#   BENCH_TIMEOUT   seconds per process before it is stopped (default 1800)
#   BENCH_OUT       folder for the raw JSON lines and logs (default: a new temporary folder)
#   LIANDAN_ENV     extra VAR=VALUE words for liandan's command only, e.g. "OMP_WAIT_POLICY=PASSIVE"
#                   (the peer always has that one; see bench/README.md on loaded machines)
#
# Prints a markdown table on stdout (progress on stderr): per (case, shape) the median over the
# runs of each side's per-run median time, the min-max of those per-run medians, and the ratio
# torch / liandan (> 1: liandan is faster). A case that fails on one side gets a line saying why.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
which_case=${1:-all}
reps=${2:-5}
bin=${LIANDAN_BENCH:-$root/build/release/bench/liandan_bench_ops}
threads=${BENCH_THREADS:-2}
timeout_s=${BENCH_TIMEOUT:-1800}
read -r -a inner_args <<<"${BENCH_ARGS:-}"
read -r -a liandan_env <<<"${LIANDAN_ENV:-}"
py=/usr/bin/python3  # Debian's interpreter: the python3 first on PATH has no torch

all_cases=(gemm attention layernorm cross_entropy)
case "$which_case" in
  all) cases=("${all_cases[@]}") ;;
  gemm | attention | layernorm | cross_entropy) cases=("$which_case") ;;
  *) echo "ops_vs_torch.sh: unknown case '$which_case' (gemm, attention, layernorm, cross_entropy, all)" >&2; exit 2 ;;
esac
if ! [[ $reps =~ ^[1-9][0-9]*$ ]]; then
  echo "ops_vs_torch.sh: reps must be a positive integer, got '$reps'" >&2
  exit 2
fi
if [[ ! -x $bin ]]; then
  echo "ops_vs_torch.sh: $bin is not an executable; build it (cmake --build build/release --target liandan_bench_ops) or set LIANDAN_BENCH" >&2
  exit 2
fi
if [[ ! -x $py ]] || ! $py -c 'import torch' 2>/dev/null; then
  echo "ops_vs_torch.sh: $py cannot import torch (install Debian's python3-torch)" >&2
  exit 2
fi

out=${BENCH_OUT:-$(mktemp -d /tmp/ops_vs_torch.XXXXXX)}
mkdir -p "$out"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# run_side <side> <case> <rep> <command...>: stdout -> <side>.<case>.<rep>.jsonl, stderr -> .err, exit code -> .rc
run_side() {
  local side=$1 name=$2 rep=$3
  shift 3
  local base="$out/$side.$name.$rep" t0 rc
  t0=$(date +%s%N)
  timeout --kill-after=10 "$timeout_s" "$@" >"$base.jsonl" 2>"$base.err"
  rc=$?
  echo "$rc" >"$base.rc"
  printf '[ops_vs_torch] %-13s rep %d/%d %-7s rc=%d %6d ms\n' "$name" "$rep" "$reps" "$side" "$rc" \
    $((($(date +%s%N) - t0) / 1000000)) >&2
}

for name in "${cases[@]}"; do
  for ((rep = 1; rep <= reps; rep++)); do
    # OPENBLAS_* are unset for each command only: the machine pins OpenBLAS to its Haswell kernels.
    run_side liandan "$name" "$rep" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${liandan_env[@]}" \
      "$bin" "$name" --threads "$threads" "${inner_args[@]}"
    run_side torch "$name" "$rep" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE \
      "$py" "$here/ops_bench_torch.py" "$name" --threads "$threads" "${inner_args[@]}"
  done
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "[ops_vs_torch] raw results in $out" >&2

"$py" - "$out" "$reps" "$threads" "$load_start" "$load_end" "${LIANDAN_ENV:-}" "${BENCH_ARGS:-}" "${cases[@]}" <<'PY'
"""Aggregates the per-run JSON lines into the markdown table (plain json, no pandas)."""
import json
import os
import statistics
import sys

out, reps, threads, load_start, load_end = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
liandan_env, bench_args = sys.argv[6], sys.argv[7]
cases = sys.argv[8:]
sides = ("liandan", "torch")


def read_run(side, case, rep):
    """(JSON lines, exit code, last stderr line) of one process."""
    base = os.path.join(out, f"{side}.{case}.{rep}")
    lines = []
    try:
        with open(base + ".jsonl") as f:
            for raw in f:
                raw = raw.strip()
                if raw.startswith("{"):
                    try:
                        lines.append(json.loads(raw))
                    except json.JSONDecodeError:
                        pass
    except OSError:
        pass
    try:
        rc = int(open(base + ".rc").read().strip())
    except (OSError, ValueError):
        rc = None
    try:
        err = [l.strip() for l in open(base + ".err", errors="replace") if l.strip()]
    except OSError:
        err = []
    return lines, rc, (err[-1] if err else "")


def process_failure(rc, last_err):
    if rc is None:
        return "never ran"
    if rc == 124:
        return "timed out (BENCH_TIMEOUT)"
    why = f"killed by signal {rc - 128}" if rc > 128 else f"exit code {rc}"
    return f"{why}: {last_err}" if last_err else why


def fmt_ms(x):
    return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


def cell(side_result):
    """side_result: dict(values, errors, crashes). Returns (text, median or None)."""
    vals = side_result["values"]
    if vals:
        med = statistics.median(vals)
        text = f"{fmt_ms(med)} ({fmt_ms(min(vals))}-{fmt_ms(max(vals))})"
        if len(vals) < reps:
            text += f" [{len(vals)}/{reps} runs]"
        return text, med
    if side_result["errors"]:
        return "failed: " + sorted(set(side_result["errors"]))[0], None
    if side_result["crashes"]:
        return "no result: " + side_result["crashes"][0], None
    return "no result", None


rows = []          # (case, shape, liandan cell, torch cell, ratio, gflops liandan, gflops torch)
slower = []        # shapes where liandan is slower
env_notes = {}     # torch-side facts (version, OpenBLAS core and threads)
for case in cases:
    shapes = []    # order of first appearance over both sides
    results = {}   # (shape, side) -> dict(values, errors, crashes)
    flops = {}
    crashes = {s: [] for s in sides}
    for rep in range(1, reps + 1):
        for side in sides:
            lines, rc, last_err = read_run(side, case, rep)
            seen = set()
            for d in lines:
                shape = d.get("shape", "?")
                if shape not in shapes:
                    shapes.append(shape)
                seen.add(shape)
                r = results.setdefault((shape, side), {"values": [], "errors": [], "crashes": []})
                if "error" in d:
                    r["errors"].append(str(d["error"]))
                elif "median_ms" in d:
                    r["values"].append(float(d["median_ms"]))
                    if d.get("flops"):
                        flops[shape] = float(d["flops"])
                if side == "torch":
                    for k in ("torch", "openblas_core", "openblas_threads", "threads"):
                        if k in d:
                            env_notes.setdefault(k, set()).add(str(d[k]))
            # a process that failed loses the shapes it had not reached yet: mark those (one that
            # only reported per-shape errors has seen every shape, so nothing is marked)
            if rc != 0:
                crashes[side].append((seen, process_failure(rc, last_err)))
    for shape_list_side in sides:
        for seen, why in crashes[shape_list_side]:
            for shape in shapes:
                if shape not in seen:
                    results.setdefault((shape, shape_list_side), {"values": [], "errors": [], "crashes": []})[
                        "crashes"].append(why)
    if not shapes:
        why = {s: (crashes[s][0][1] if crashes[s] else "no output") for s in sides}
        rows.append((case, "(all shapes)", "no result: " + why["liandan"], "no result: " + why["torch"], "-", "", ""))
        continue
    empty = {"values": [], "errors": [], "crashes": []}
    for shape in shapes:
        lt, lm = cell(results.get((shape, "liandan"), empty))
        tt, tm = cell(results.get((shape, "torch"), empty))
        ratio = f"{tm / lm:.2f}" if lm and tm else "-"
        if lm and tm and tm / lm < 1.0:
            slower.append(f"{case} {shape} ({tm / lm:.2f}: liandan {lm / tm:.2f}x slower)")
        gl = f"{flops[shape] / (lm * 1e6):.0f}" if shape in flops and lm else ""
        gt = f"{flops[shape] / (tm * 1e6):.0f}" if shape in flops and tm else ""
        rows.append((case, shape, lt, tt, ratio, gl, gt))

print("| case | shape | liandan ms, median (min-max) | torch ms, median (min-max) | torch/liandan | liandan GFLOP/s | torch GFLOP/s |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
print()
print(f"- {reps} alternating runs per side (each its own process), {threads} threads each; a run's figure is "
      "its median over the inner reps, the table shows the median (min-max) of those per-run medians.")
print(f"- inner args: {bench_args or '(defaults: --reps 10 --warmup 3)'}; liandan env: "
      f"{liandan_env or '(OPENBLAS_* unset only)'}; peer env: OPENBLAS_* unset, OMP_WAIT_POLICY=PASSIVE.")
print("- torch/liandan > 1: liandan is faster. GFLOP/s = 2*N*in*out / median time (gemm only).")
notes = ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(env_notes.items()))
if notes:
    print(f"- peer: {notes}")
cores = env_notes.get("openblas_core", set())
if cores and cores != {"Cooperlake"}:
    print(f"- WARNING: the peer ran OpenBLAS's {'/'.join(sorted(cores))} kernels, not Cooperlake: not at its best.")
print(f"- load average (1/5/15 min) at start {load_start}, at end {load_end}.")
if slower:
    print("- liandan slower (ratio < 1): " + "; ".join(slower))
PY
