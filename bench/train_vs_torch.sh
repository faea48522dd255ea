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
script=train_vs_torch.sh
reps=5
configs=tiny,small,gpt2-124M
precision=both
build_dir=$root/build/release
build=1
# shellcheck source=SCRIPTDIR/lib_side_by_side.sh
source "$here/lib_side_by_side.sh"

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

sbs_setup

for c in "${config_list[@]}"; do
  for ((rep = 1; rep <= reps; rep++)); do
    for p in "${sides[@]}"; do
      dtype=float32
      [[ $p == bf16 ]] && dtype=bfloat16
      run_liandan "$c:$p" "$rep" --config "$c" --precision "$p"
      run_peer "$c:$p" "$rep" --config "$c" --dtype "$dtype"
    done
  done
done

sbs_summarize "$(cat <<'PY'
configs = args[0]
sides = args[1:]
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
)" "$configs" "${sides[@]}"
