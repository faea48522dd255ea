#!/usr/bin/env bash
# Tokenizer bench, side by side on this machine in one run (see README.md):
#   1. training at vocab 8000: `liandan tokenizer train` vs `spm_train --model_type=bpe`
#   2. encoding throughput: `liandan tokenizer encode` vs `spm_encode` (each with its own trained model)
#   3. encoding throughput with GPT-2's tokenizer: liandan vs node + gpt-3-encoder (ids compared too)
# Each pair of commands runs alternately REPS times; tables report medians.
#
# Environment: LIANDAN (default build/release/liandan), SHARED (default ../shared), NODE_REF
# (default build/node_ref/node_modules), REPS (default 3), THREADS (default 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LIANDAN="${LIANDAN:-$ROOT/build/release/liandan}"
SHARED="${SHARED:-$ROOT/../shared}"
NODE_REF="${NODE_REF:-$ROOT/build/node_ref/node_modules}"
REPS="${REPS:-3}"
THREADS="${THREADS:-2}"
VOCAB=8000

die() { echo "train_vs_spm.sh: $*" >&2; exit 1; }
[[ -x "$LIANDAN" ]] || die "no liandan binary at $LIANDAN (build it: cmake --build build/release --target liandan)"
for tool in spm_train spm_encode node; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install sentencepiece nodejs)"
done
[[ -d "$NODE_REF/gpt-3-encoder" ]] || die "no $NODE_REF/gpt-3-encoder (tools/test.sh installs it)"
[[ -f "$SHARED/corpora/tinyshakespeare.txt" ]] || die "no $SHARED/corpora/tinyshakespeare.txt"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# English fortunes: the text files of /usr/share/games/fortunes (not the .dat indexes, not the .u8
# links to the same files, not fortunes-zh's Chinese files).
english_fortunes() {
  local zh=" chinese song100 tang300 "
  if command -v dpkg >/dev/null && dpkg -L fortunes-zh >/dev/null 2>&1; then
    zh=" $(dpkg -L fortunes-zh | xargs -n1 basename | tr '\n' ' ') "
  fi
  local f name
  for f in /usr/share/games/fortunes/*; do
    name="$(basename "$f")"
    if [[ -f "$f" && ! -L "$f" && "$name" != *.dat && "$name" != *.u8 && "$zh" != *" $name "* ]]; then cat "$f"; fi
  done
}
english_fortunes > "$WORK/fortunes_en.txt"
[[ -s "$WORK/fortunes_en.txt" ]] || die "no English fortunes in /usr/share/games/fortunes (apt-get install fortunes)"
cp "$SHARED/corpora/tinyshakespeare.txt" "$WORK/tinyshakespeare.txt"
CORPORA=(tinyshakespeare fortunes_en)

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# time_it VAR command...: runs the command (its stdout is discarded) and appends the seconds to VAR.
time_it() {
  local var="$1"; shift
  local t0 t1
  t0="$(now)"; "$@" >/dev/null; t1="$(now)"
  printf -v "$var" '%s %s' "${!var}" "$(elapsed "$t0" "$t1")"
}
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
rate() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.2f", m / s }'; }

liandan_train() { "$LIANDAN" tokenizer train --input "$1" --vocab-size $VOCAB --threads "$THREADS" --out "$2" 2>/dev/null; }
spm_train_bpe() {
  spm_train --input="$1" --model_prefix="$2" --model_type=bpe --vocab_size=$VOCAB --num_threads="$THREADS" \
    --minloglevel=2 >/dev/null 2>&1
}
liandan_encode() { "$LIANDAN" tokenizer encode --tokenizer "$1" --input "$2" --output ids; }
spm_encode_ids() { spm_encode --model="$1" --output_format=id < "$2"; }
# gpt-3-encoder's encode() grows its result with Array.concat per word (quadratic: one call on
# tinyshakespeare takes minutes), so it gets lines grouped into blocks, cut only after a newline that
# sits between two printable ASCII characters: GPT-2's pattern never joins text across such a cut.
node_gpt2_encode() {
  node -e '
    const { encode } = require(process.argv[1] + "/gpt-3-encoder");
    const text = require("fs").readFileSync(process.argv[2], "utf8");
    const out = [];
    let start = 0;
    const cut = /(?<=[!-~]\n)(?=[!-~])/g;
    for (const m of text.matchAll(cut)) {
      if (m.index - start < 4096) continue;
      for (const id of encode(text.slice(start, m.index))) out.push(id);
      start = m.index;
    }
    for (const id of encode(text.slice(start))) out.push(id);
    process.stdout.write(out.join(" ") + "\n");
  ' "$NODE_REF" "$1"
}

echo "tokenizer bench: $(nproc) cores, $REPS alternating runs each, threads=$THREADS, vocab $VOCAB" >&2

TRAIN_ROWS="" ENCODE_ROWS="" GPT2_ROWS=""
for corpus in "${CORPORA[@]}"; do
  file="$WORK/$corpus.txt"
  size="$(mb "$file")"
  t_ld="" t_spm=""
  for rep in $(seq "$REPS"); do
    echo "  train $corpus: run $rep/$REPS" >&2
    rm -rf "$WORK/ld_$corpus"
    time_it t_ld liandan_train "$file" "$WORK/ld_$corpus"
    time_it t_spm spm_train_bpe "$file" "$WORK/spm_$corpus"
  done
  m_ld="$(median <<<"$t_ld")" m_spm="$(median <<<"$t_spm")"
  TRAIN_ROWS+="| $corpus | $size | $m_ld | $m_spm | $(ratio "$m_spm" "$m_ld") |"$'\n'

  e_ld="" e_spm=""
  for rep in $(seq "$REPS"); do
    echo "  encode $corpus: run $rep/$REPS" >&2
    time_it e_ld liandan_encode "$WORK/ld_$corpus" "$file"
    time_it e_spm spm_encode_ids "$WORK/spm_$corpus.model" "$file"
  done
  m_ld="$(median <<<"$e_ld")" m_spm="$(median <<<"$e_spm")"
  ENCODE_ROWS+="| $corpus | $size | $(rate "$size" "$m_ld") | $(rate "$size" "$m_spm") | $(ratio "$m_spm" "$m_ld") |"$'\n'

  g_ld="" g_node=""
  for rep in $(seq "$REPS"); do
    echo "  encode $corpus with GPT-2: run $rep/$REPS" >&2
    time_it g_ld liandan_encode "$SHARED/tokenizers/gpt2" "$file"
    time_it g_node node_gpt2_encode "$file"
  done
  liandan_encode "$SHARED/tokenizers/gpt2" "$file" > "$WORK/ld_ids"
  node_gpt2_encode "$file" > "$WORK/node_ids"
  same="$(cmp -s "$WORK/ld_ids" "$WORK/node_ids" && echo yes || echo NO)"
  m_ld="$(median <<<"$g_ld")" m_node="$(median <<<"$g_node")"
  GPT2_ROWS+="| $corpus | $size | $(rate "$size" "$m_ld") | $(rate "$size" "$m_node") | $(ratio "$m_node" "$m_ld") | $same |"$'\n'
done

cat <<EOF

### Training, vocab $VOCAB (median seconds of $REPS, whole process)

| corpus | MB | liandan train | spm_train --model_type=bpe | liandan faster by |
|---|---|---|---|---|
${TRAIN_ROWS}
### Encoding throughput, each with the model it trained above (MB/s, whole process: load + encode + print ids)

| corpus | MB | liandan encode | spm_encode | liandan faster by |
|---|---|---|---|---|
${ENCODE_ROWS}
### Encoding throughput with GPT-2's tokenizer (MB/s, whole process)

| corpus | MB | liandan encode | node gpt-3-encoder | liandan faster by | same ids |
|---|---|---|---|---|---|
${GPT2_ROWS}
Targets: training ≥ 3x faster than spm_train; encoding ≥ 5x faster than spm_encode.
EOF
