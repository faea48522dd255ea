#!/usr/bin/env bash
# Pretrains a small GPT-2 on tinyshakespeare end to end (docs/pretraining.md "Example:
# tinyshakespeare"): a 2048-token byte-level BPE trained on the text, the speeches (blank-line
# blocks) as documents with 10% held out as val, examples/tinyshakespeare.yaml (1500 steps, val loss
# every 100), then the curves. Everything goes under build/tinyshakespeare/ (replaced on each run).
#
#   tools/tinyshakespeare.sh [pretrain overrides...]     e.g. --train.max_steps=300
# Environment: LIANDAN (default build/release/liandan, built if missing), CORPUS (default
# <repo>/../shared/corpora/tinyshakespeare.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
liandan=${LIANDAN:-build/release/liandan}
corpus=${CORPUS:-$(dirname "$PWD")/shared/corpora/tinyshakespeare.txt}
out=build/tinyshakespeare
if [[ ! -x $liandan ]]; then
  cmake --preset release >/dev/null
  cmake --build --preset release --target liandan
fi
[[ -f $corpus ]] || { echo "tinyshakespeare.sh: no corpus at $corpus (set CORPUS)" >&2; exit 2; }
rm -rf "$out" && mkdir -p "$out"

echo "== 1. a 2048-token byte-level BPE trained on the text"
"$liandan" tokenizer train --input "$corpus" --vocab-size 2048 --special '<|endoftext|>' --out "$out/tokenizer"

echo "== 2. token shards: speeches as documents, 10% of them as val; no dedup (repeated short lines are the play's)"
"$liandan" data prepare --input "$corpus" --format text --tokenizer "$out/tokenizer" --out "$out/data" \
  --val-fraction 0.1 --dedup none

echo "== 3. pretraining (val loss every 100 steps)"
"$liandan" pretrain --config examples/tinyshakespeare.yaml "$@"

echo "== 4. curves"
"$liandan" plot "$out/run"
echo "tinyshakespeare: run folder $out/run (metrics.jsonl, loss.png, lr.png, model/)"
