#!/usr/bin/env bash
# Fine-tuning end to end (docs/finetuning.md, "Results"): a character-level GPT-2 base pretrained on
# plain string reversals and on ChatML conversations of other tasks, then SFT on "Reverse: abcde" ->
# "edcba" in ChatML with each method (lora, full, adapter, prompt), exact match on 200 held-out
# strings before (the base) and after. About 10 minutes on 2 idle cores, most of it pretraining. Everything goes under build/finetune_demo/ (replaced on each run).
#
#   tools/finetune_demo.sh [methods...]        default: lora full adapter prompt
# Environment: LIANDAN (default build/release/liandan, built if missing), THREADS (default 2),
# NICE (default 10: other work on the machine goes first).
set -euo pipefail
cd "$(dirname "$0")/.."
liandan=${LIANDAN:-build/release/liandan}
threads=${THREADS:-2}
run=(nice -n "${NICE:-10}")
methods=("$@")
[[ ${#methods[@]} -gt 0 ]] || methods=(lora full adapter prompt)
out=build/finetune_demo
if [[ ! -x $liandan ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target liandan
fi
rm -rf "$out" && mkdir -p "$out"

echo "== 1. data: pretraining corpus, SFT train (2000) and held-out val (200) strings"
python3 tools/finetune_demo_data.py "$out/raw"

echo "== 2. a character-level tokenizer: 256 bytes + 3 special tokens, no merges"
"$liandan" tokenizer train --input "$out/raw/corpus.txt" --vocab-size 259 --special '<|endoftext|>' \
  --special '<|im_start|>' --special '<|im_end|>' --threads "$threads" --out "$out/tokenizer"
# Every document is kept: the cleaning rules are for natural text, not for these short synthetic lines.
"$liandan" data prepare --input "$out/raw/corpus.txt" --format text --tokenizer "$out/tokenizer" --out "$out/data" \
  --val-fraction 0.02 --dedup none --min-chars 0 --max-non-letter 1 --no-repetition --no-boilerplate \
  --keep-pii --threads "$threads"

echo "== 3. pretraining the base (examples/finetune/reverse_base.yaml)"
"${run[@]}" "$liandan" pretrain --config examples/finetune/reverse_base.yaml --train.threads="$threads"

echo "== 4a. the base's skill: held-out reversals in the corpus's own layout (no SFT)"
"${run[@]}" "$liandan" eval --model "$out/base/model" --task generate --data "$out/raw/base_probe.jsonl" \
  --stop-at-newline --max-new-tokens 16 --batch-size 50 --output "$out/base_probe.json"

echo "== 4b. the base's exact match on the SFT task: LoRA (B = 0, so the model is the base) for one step at lr 1e-12"
"${run[@]}" "$liandan" finetune --config examples/finetune/reverse_lora.yaml --train.threads="$threads" \
  --train.max_steps=1 --train.lr=1e-12 --train.warmup_steps=0 --eval.every=1 --output_dir="$out/before"

for method in "${methods[@]}"; do
  echo "== 5. SFT: $method (examples/finetune/reverse_$method.yaml)"
  start=$(date +%s)
  "${run[@]}" "$liandan" finetune --config "examples/finetune/reverse_$method.yaml" --train.threads="$threads"
  echo "$method: $(($(date +%s) - start)) s"
done

echo "== summary: the last exact match of each run (metrics.jsonl)"
python3 - "$out" before "${methods[@]}" <<'PY'
import json, sys
probe = json.load(open(f"{sys.argv[1]}/base_probe.json"))["metrics"]["exact_match"]
print(f"base, own layout ('reverse w' under the role 'backwards'): exact match {100 * probe:5.1f}%")
for run in sys.argv[2:]:
    evals = [json.loads(line) for line in open(f"{sys.argv[1]}/{run}/metrics.jsonl") if '"eval"' in line]
    e = evals[-1]
    print(f"{run:8} step {e['step']:4}  exact match {100 * e['exact_match']:5.1f}% of {e['exact_match_of']}")
PY
