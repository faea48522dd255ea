#!/usr/bin/env bash
# Installs what is needed, builds liandan (Release) and runs the demo, end to end on Debian's
# fortunes (English and Chinese, installed by setup-deps): train a BPE tokenizer, clean and
# deduplicate the corpus into token shards, pretrain a small GPT-2 (examples/demo_fortunes.yaml),
# plot its curves and generate from it. Everything goes under build/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target liandan
liandan=build/release/liandan
corpus=/usr/share/games/fortunes
rm -rf build/demo && mkdir -p build/demo

echo "== 1. a byte-level BPE tokenizer trained on the fortunes"
mapfile -t files < <(find "$corpus" -type f ! -name '*.dat' ! -name '*.u8' | sort)
$liandan tokenizer train --input "${files[@]}" --vocab-size 4096 --special '<|endoftext|>' --out build/demo/tokenizer

echo "== 2. cleaning, MinHash dedup and token shards"
$liandan data prepare --input "$corpus" --tokenizer build/demo/tokenizer --out build/demo/data --dedup minhash

echo "== 3. pretraining a 4-layer GPT-2 (loss, tokens/s and samples as it goes)"
$liandan pretrain --config examples/demo_fortunes.yaml "$@"

echo "== 4. curves and a sample"
$liandan plot build/demo/run
$liandan generate --model build/demo/run/model --prompt "Q: Why" --max-new-tokens 40 --temperature 0.8 --seed 1
echo "demo: run folder build/demo/run (metrics.jsonl, loss.png, lr.png, checkpoints/, model/)"
