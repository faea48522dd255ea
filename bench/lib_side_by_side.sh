# shellcheck shell=bash disable=SC2154  # script, root, build_dir, build and reps come from the sourcing script
# Sourced by the side-by-side training benchmarks (train_vs_torch.sh, finetune_vs_torch.sh): the
# parts they share, so that both run liandan and the peer the same way.
#
# The sourcing script sets before calling these: script (its name, for messages), root (the
# repository), build_dir, build (1: build first), reps, out (set by sbs_setup).

die() {
  echo "$script: $*" >&2
  exit 2
}

# sbs_setup: reads the environment (see train_vs_torch.sh's header), builds liandan_bench_train
# unless told not to, checks both programs, makes the output folder and records the load.
# Sets bin, peer_dir, threads, timeout_s, liandan_env_words, liandan_env, py, out, load_start.
sbs_setup() {
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

  out=${BENCH_OUT:-$(mktemp -d "/tmp/${script%.sh}.XXXXXX")}
  mkdir -p "$out"
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
}

# run_side <side> <name> <rep> <command...>: stdout -> <side>.<name>.<rep>.jsonl, stderr -> .err, exit code -> .rc
run_side() {
  local side=$1 name=$2 rep=$3
  shift 3
  local base="$out/$side.$name.$rep" t0 rc
  t0=$(date +%s%N)
  timeout --kill-after=10 "$timeout_s" "$@" >"$base.jsonl" 2>"$base.err"
  rc=$?
  echo "$rc" >"$base.rc"
  printf '[%s] %-16s rep %d/%d %-7s rc=%d %7d ms\n' "${script%.sh}" "$name" "$rep" "$reps" "$side" "$rc" \
    $((($(date +%s%N) - t0) / 1000000)) >&2
}

# run_liandan <name> <rep> <liandan_bench_train options...>
run_liandan() {
  local name=$1 rep=$2
  shift 2
  run_side liandan "$name" "$rep" env "${liandan_env[@]}" "$bin" --threads "$threads" --tag "rep$rep" "$@"
}

# run_peer <name> <rep> <bench_train.py options...>: the peer exactly as /work/shared/bench/README.md
# runs it at its best on this machine
run_peer() {
  local name=$1 rep=$2
  shift 2
  # shellcheck disable=SC2016  # $1 and $@ are the inner shell's
  run_side peer "$name" "$rep" bash -c 'cd "$1" && shift && exec "$@"' _ "$peer_dir" \
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE "$py" bench_train.py \
    --threads "$threads" --tag "rep$rep" "$@"
}

# sbs_summarize <python table code> <args...>: runs the table code after the shared Python helpers
# (read_run, fmt, summary; out and reps come first in sys.argv) and records the end load.
sbs_summarize() {
  local table=$1
  shift
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "[${script%.sh}] raw results in $out" >&2
  "$py" - "$out" "$reps" "$threads" "$load_start" "$load_end" "$liandan_env_words" "$@" <<PY
$(sbs_python_helpers)
$table
PY
}

sbs_python_helpers() {
  cat <<'PY'
"""Aggregates the per-process JSON lines into a markdown table."""
import json
import os
import statistics
import sys

out, reps, threads, load_start, load_end, liandan_env = sys.argv[1:7]
reps = int(reps)
args = sys.argv[7:]


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
PY
}
