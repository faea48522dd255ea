#!/usr/bin/env bash
# LoRA fine-tuning step throughput, liandan against PyTorch 1.13 CPU side by side, and against
# liandan's own full training step (bench/README.md "LoRA step"). Both LoRA sides: rank 8, alpha 16
# on every block's attention qkv (attn.c_attn) and output projection (attn.c_proj), the base frozen,
# AdamW over the LoRA tensors only (liandan_bench_train --lora, the peer's bench_train.py --lora);
# random tokens, 3 warm-up steps and 10 timed ones per process, tokens/s from the median step time.
#
#   bench/finetune_vs_torch.sh [--reps N] [--configs tiny,small[,gpt2-124M]] [--build DIR | --no-build]
#                              [--quick]
#     --reps N       alternating processes per program (default 5)
#     --configs      comma-separated configs (default tiny,small; gpt2-124M is allowed, and slow)
#     --build DIR    build liandan_bench_train in DIR first (default build/release; configured with
#                    the release preset when DIR has no CMakeCache.txt)
#     --no-build     use the binary as it is (LIANDAN_BENCH, or DIR/bench/liandan_bench_train)
#     --quick        1 rep, tiny only: checks that the script and both programs work
# Per config and rep the order is liandan LoRA, peer LoRA, liandan full (fp32 throughout), so drift in
# the machine's speed hits all three equally.
#
# Environment: as train_vs_torch.sh (LIANDAN_BENCH, PEER_DIR, BENCH_THREADS, BENCH_TIMEOUT, BENCH_OUT,
# LIANDAN_ENV).
#
# Prints a markdown table on stdout (progress on stderr): per config, the median over the processes of
# tokens_per_s with the min-max for liandan LoRA, the peer's LoRA and liandan full; the ratios of the
# medians liandan LoRA / peer LoRA (the target: >= 2) and liandan LoRA / liandan full (a LoRA step
# skips the base's weight-gradient GEMMs: the FLOPs ratio (6N + A) / (4N + A) is its ceiling); each
# run's median peak RSS.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
script=finetune_vs_torch.sh
reps=5
configs=tiny,small
build_dir=$root/build/release
build=1
# shellcheck source=SCRIPTDIR/lib_side_by_side.sh
source "$here/lib_side_by_side.sh"

while (($#)); do
  case "$1" in
    --reps) reps=${2-}; shift 2 || die "--reps needs a value" ;;
    --configs) configs=${2-}; shift 2 || die "--configs needs a value" ;;
    --build) build_dir=${2-}; shift 2 || die "--build needs a folder" ;;
    --no-build) build=0; shift ;;
    --quick) reps=1 configs=tiny; shift ;;
    -h | --help) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[[ $reps =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer, got '$reps'"
IFS=, read -r -a config_list <<<"$configs"
for c in "${config_list[@]}"; do
  [[ $c =~ ^(tiny|small|gpt2-124M)$ ]] || die "bad config '$c' (tiny, small, gpt2-124M)"
done

sbs_setup

for c in "${config_list[@]}"; do
  for ((rep = 1; rep <= reps; rep++)); do
    run_liandan "$c:lora" "$rep" --config "$c" --lora
    run_peer "$c:lora" "$rep" --config "$c" --lora
    run_liandan "$c:full" "$rep" --config "$c"
  done
done

sbs_summarize "$(cat <<'PY'
configs = args[0]
print(f"Training step tok/s (B*T / median step time), fp32, median over {reps} alternating processes per "
      f"program (min-max), {threads} threads. loadavg {load_start} -> {load_end}; liandan env: "
      f"{liandan_env or '(none)'}\n")
print("| config | liandan LoRA | peer LoRA | liandan full | LoRA ratio liandan / peer | liandan LoRA / full "
      "| FLOPs full / LoRA | RSS MiB liandan LoRA | peer LoRA | liandan full |")
print("|---|---|---|---|---|---|---|---|---|---|")
for config in configs.split(","):
    lt, lm, lrss, _ = summary("liandan", f"{config}:lora")
    pt, pm, prss, _ = summary("peer", f"{config}:lora")
    ft, fm, frss, _ = summary("liandan", f"{config}:full")
    lora_run, _ = read_run("liandan", f"{config}:lora", 1)
    full_run, _ = read_run("liandan", f"{config}:full", 1)
    flops = (f"{full_run['flops_per_token'] / lora_run['flops_per_token']:.2f}"
             if lora_run and full_run else "-")
    vs_peer = f"{lm / pm:.2f}" if lm and pm else "-"
    vs_full = f"{lm / fm:.2f}" if lm and fm else "-"
    print(f"| {config} | {lt} | {pt} | {ft} | {vs_peer} | {vs_full} | {flops} | {lrss} | {prss} | {frss} |")
PY
)" "$configs"
