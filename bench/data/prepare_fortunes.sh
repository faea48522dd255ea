#!/usr/bin/env bash
# `liandan data prepare` throughput and peak memory on the demo corpus (Debian's fortunes and
# fortunes-zh), with each dedup mode. There is no peer to compare with here: the figures are
# liandan's own, MB/s of input read and peak RSS from GNU time.
#
#   bench/data/prepare_fortunes.sh [reps] [threads]     (defaults: 3 reps, 2 threads)
#
# Environment: LIANDAN (default <repo>/build/release/liandan), TOKENIZER (default
# <repo>/../shared/tokenizers/gpt2), CORPUS (default /usr/share/games/fortunes, which holds zh/).
# Prints a markdown table: mode, median MB/s (min-max), median documents/s, peak RSS MiB (max).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
liandan=${LIANDAN:-$here/build/release/liandan}
tokenizer=${TOKENIZER:-$here/../shared/tokenizers/gpt2}
corpus=${CORPUS:-/usr/share/games/fortunes}
reps=${1:-3}
threads=${2:-2}
[ -x "$liandan" ] || { echo "prepare_fortunes: build liandan first ($liandan)" >&2; exit 1; }
[ -d "$corpus" ] || { echo "prepare_fortunes: $corpus missing (apt-get install fortunes fortunes-zh)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "prepare_fortunes: GNU time missing (apt-get install time)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "| dedup | MB/s median (min-max) | documents/s median | peak RSS MiB (max) | kept documents |"
echo "|---|---|---|---|---|"
for mode in none exact minhash; do
  : > "$work/mbs"; : > "$work/dps"; : > "$work/rss"
  for ((i = 1; i <= reps; i++)); do
    /usr/bin/time -f "%M" -o "$work/time" "$liandan" data prepare --input "$corpus" --tokenizer "$tokenizer" \
      --out "$work/out" --force --dedup "$mode" --threads "$threads" > /dev/null 2> "$work/err" ||
      { cat "$work/err" >&2; exit 1; }
    python3 - "$work/out/report.json" >> "$work/stats" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
kept = sum(s["documents"] for s in r["splits"].values())
print(r["mb_per_second"],
      r["documents_per_second"], kept)
PY
    read -r mbs dps kept < <(tail -1 "$work/stats")
    echo "$mbs" >> "$work/mbs"; echo "$dps" >> "$work/dps"; echo $(( $(tail -1 "$work/time") / 1024 )) >> "$work/rss"
    echo "[prepare_fortunes] $mode rep $i: $mbs MB/s" >&2
  done
  printf "| %s | %.2f (%.2f-%.2f) | %.0f | %s | %s |\n" "$mode" "$(median < "$work/mbs")" \
    "$(sort -g "$work/mbs" | head -1)" "$(sort -g "$work/mbs" | tail -1)" "$(median < "$work/dps")" \
    "$(sort -g "$work/rss" | tail -1)" "$kept"
done
