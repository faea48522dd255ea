#!/usr/bin/env bash
# Data-parallel scaling of the training step, liandan (dist::DataParallel over Open MPI) against
# PyTorch 1.13 DDP (gloo), side by side (bench/README.md "Data parallel against PyTorch DDP").
# liandan_bench_dp and ddp_torch.py run the same GPT-2 configs (B=8, T=256 per rank), 1 thread per
# rank, 3 warm-up and 10 timed steps per job; tokens/s = ranks*B*T / median step time.
#
#   bench/dist/dp_vs_torch.sh [--reps N] [--configs tiny,small] [--ranks 2] [--bucket-mb 25]
#                             [--build DIR | --no-build] [--quick]
#     --reps N       alternating jobs per side and rank count (default 3)
#     --configs      comma-separated configs (default tiny,small)
#     --ranks N      the data-parallel job's ranks (default 2), against 1 process
#     --bucket-mb M  gradient bucket size for both (dist.bucket_mb / DDP bucket_cap_mb; default 25)
#     --build DIR    build liandan_bench_dp in DIR first (default build/release; configured with the
#                    release preset when DIR has no CMakeCache.txt)
#     --no-build     use the binary as it is (LIANDAN_BENCH, or DIR/bench/liandan_bench_dp)
#     --quick        1 rep, tiny only, 3 timed steps: checks that the script and both programs work
#     --table DIR    print the table of an earlier run's raw results (its BENCH_OUT) without running
# Per config and rep the order is liandan 1 rank, liandan N ranks, torch 1, torch N, so drift in the
# machine's speed hits both programs alike.
#
# Environment: LIANDAN_BENCH, PEER_DIR (folder of gpt_model.py, default <repo>/../shared/bench),
# BENCH_TIMEOUT (seconds per job, default 600), BENCH_OUT (raw JSON lines and logs; default a new
# temporary folder), MPIRUN (default mpirun). Both sides run with OMP_NUM_THREADS=1 and
# OMP_WAIT_POLICY=PASSIVE.
#
# Prints a markdown table on stdout (progress on stderr): per config, each side's median tok/s over
# the jobs (min-max) at 1 and N ranks, the scaling efficiency tok/s(N) / (N * tok/s(1)) of the
# medians, the ratio liandan / torch at N ranks, and liandan's all-reduce figures (alone, exposed,
# hidden fraction; see bench/dist/dp_bench.cpp).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bench=$(dirname "$here")
root=$(dirname "$bench")
script=dp_vs_torch.sh
reps=3
configs=tiny,small
ranks=2
bucket_mb=25
steps=(--steps 10 --warmup 3)
build_dir=$root/build/release
build=1
table_of=
# shellcheck source=SCRIPTDIR/../lib_side_by_side.sh
source "$bench/lib_side_by_side.sh"

while (($#)); do
  case "$1" in
    --reps) reps=${2-}; shift 2 || die "--reps needs a value" ;;
    --configs) configs=${2-}; shift 2 || die "--configs needs a value" ;;
    --ranks) ranks=${2-}; shift 2 || die "--ranks needs a value" ;;
    --bucket-mb) bucket_mb=${2-}; shift 2 || die "--bucket-mb needs a value" ;;
    --build) build_dir=${2-}; shift 2 || die "--build needs a folder" ;;
    --no-build) build=0; shift ;;
    --quick) reps=1 configs=tiny steps=(--steps 3 --warmup 1); shift ;;
    --table) table_of=${2-}; shift 2 || die "--table needs a folder" ;;
    -h | --help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$reps'"
[[ $ranks =~ ^[2-9]$ ]] || die "--ranks must be 2 to 9, got '$ranks'"
[[ $bucket_mb =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--bucket-mb must be a positive number, got '$bucket_mb'"
IFS=, read -r -a config_list <<<"$configs"
for c in "${config_list[@]}"; do
  [[ $c =~ ^(tiny|small)$ ]] || die "bad config '$c' (tiny, small)"
done

bin=${LIANDAN_BENCH:-$build_dir/bench/liandan_bench_dp}
peer_dir=${PEER_DIR:-$(dirname "$root")/shared/bench}
mpirun=${MPIRUN:-mpirun}
timeout_s=${BENCH_TIMEOUT:-600}
threads=1
liandan_env_words="OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
py=/usr/bin/python3  # Debian's interpreter: the python3 first on PATH has no torch
if [[ -n $table_of ]]; then
  [[ -d $table_of ]] || die "--table: no folder $table_of"
  build=0 reps=0 out=$table_of
  first=$(compgen -G "$out/liandan.*.jsonl" | head -n 1)
  bucket_mb=$($py -c 'import json, sys; print(json.load(open(sys.argv[1]))["bucket_mb"])' "$first") ||
    die "--table: no liandan results in $out"
  reps=$(compgen -G "$out/liandan.*.*.rc" | sed 's/.*\.\([0-9]*\)\.rc$/\1/' | sort -n | tail -n 1)
fi
if ((build)) && [[ -z ${LIANDAN_BENCH:-} ]]; then
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    cmake -S "$root" --preset release -B "$build_dir" >&2 || die "configuring $build_dir failed"
  fi
  cmake --build "$build_dir" --target liandan_bench_dp >&2 || die "building liandan_bench_dp in $build_dir failed"
fi
[[ -n $table_of || -x $bin ]] || die "$bin is not an executable; build it (--build DIR) or set LIANDAN_BENCH"
command -v "$mpirun" >/dev/null || die "no $mpirun on PATH (install openmpi-bin, or set MPIRUN)"
[[ -f $peer_dir/gpt_model.py ]] || die "no gpt_model.py in $peer_dir (set PEER_DIR)"
$py -c 'import torch.distributed as d; assert d.is_available() and d.is_gloo_available()' 2>/dev/null ||
  die "$py cannot use torch.distributed with gloo"
[[ -n $table_of ]] || out=${BENCH_OUT:-$(mktemp -d "/tmp/${script%.sh}.XXXXXX")}
mkdir -p "$out"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# shellcheck disable=SC2054  # "self,vader" is one word: the btl list
mpi=("$mpirun" --oversubscribe --allow-run-as-root --mca btl self,vader -x OMP_NUM_THREADS -x OMP_WAIT_POLICY)
common=(--config CONFIG --threads 1 --bucket-mb "$bucket_mb" "${steps[@]}")

((reps > 0)) && [[ -n $table_of ]] && reps_to_run=0 || reps_to_run=$reps
for c in "${config_list[@]}"; do
  args=("${common[@]/CONFIG/$c}")
  for ((rep = 1; rep <= reps_to_run; rep++)); do
    run_side liandan "$c:1" "$rep" "$bin" "${args[@]}" --tag "rep$rep"
    run_side liandan "$c:$ranks" "$rep" "${mpi[@]}" -np "$ranks" "$bin" "${args[@]}" --tag "rep$rep"
    run_side peer "$c:1" "$rep" "$py" "$here/ddp_torch.py" --peer-dir "$peer_dir" --ranks 1 "${args[@]}" --tag "rep$rep"
    run_side peer "$c:$ranks" "$rep" "$py" "$here/ddp_torch.py" --peer-dir "$peer_dir" --ranks "$ranks" "${args[@]}" \
      --tag "rep$rep"
  done
done

sbs_summarize "$(cat <<'PY'
configs, ranks, bucket_mb = args[0], int(args[1]), args[2]


def liandan_comm(name):
    """Medians over the jobs of liandan's all-reduce figures at N ranks: alone ms, exposed ms (median
    step), hidden, exposed ms (best step), hidden (best step)."""
    runs = [r for r in (read_run("liandan", name, rep)[0] for rep in range(1, reps + 1)) if r]
    if not runs:
        return ["-"] * 5
    med = lambda f: statistics.median(f(r) for r in runs)
    alone = med(lambda r: r["allreduce_alone_s"])
    best = med(lambda r: min(r["exposed_times_s"]))
    return [f"{1e3 * alone:.1f}", f"{1e3 * med(lambda r: r['exposed_s']):.1f}", f"{med(lambda r: r['hidden_fraction']):.2f}",
            f"{1e3 * best:.1f}", f"{1 - best / alone:.2f}"]


print(f"Data-parallel training step tok/s (ranks*B*T / median step time, B=8 T=256 per rank, 1 thread per rank, "
      f"bucket {bucket_mb} MiB), median over {reps} alternating jobs per side (min-max); efficiency = "
      f"tok/s({ranks}) / ({ranks} x tok/s(1)); ratio = liandan / torch DDP at {ranks} ranks. "
      f"loadavg {load_start} -> {load_end}\n")
print(f"| config | liandan 1 | liandan {ranks} | liandan eff. | torch 1 | torch DDP {ranks} | torch eff. | ratio {ranks} ranks "
      f"| all-reduce alone ms | exposed ms | hidden | best-step exposed ms | best-step hidden |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for config in configs.split(","):
    l1, l1m, _, _ = summary("liandan", f"{config}:1")
    ln, lnm, _, _ = summary("liandan", f"{config}:{ranks}")
    p1, p1m, _, _ = summary("peer", f"{config}:1")
    pn, pnm, _, _ = summary("peer", f"{config}:{ranks}")
    eff = lambda n, one: f"{n / (ranks * one):.2f}" if n and one else "-"
    ratio = f"{lnm / pnm:.2f}" if lnm and pnm else "-"
    comm = " | ".join(liandan_comm(f"{config}:{ranks}"))
    print(f"| {config} | {l1} | {ln} | {eff(lnm, l1m)} | {p1} | {pn} | {eff(pnm, p1m)} | {ratio} | {comm} |")
PY
)" "$configs" "$ranks" "$bucket_mb"
