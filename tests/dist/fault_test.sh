#!/usr/bin/env bash
# fault_test.sh LIANDAN MPIEXEC CORPUS: how a data-parallel job ends when a rank fails.
#  1. A 2-rank `liandan pretrain` of a tiny GPT-2 (a 512-token BPE and data prepared here from the
#     first 200 kB of CORPUS), checkpointing every 20 steps. Once the first checkpoint exists, rank 1
#     is killed with SIGKILL (found among the liandan processes under this mpirun by
#     OMPI_COMM_WORLD_RANK=1 in /proc/PID/environ). mpirun must exit non-zero within
#     KILL_BOUND_S seconds (the measured time is printed), its stderr must name the dead rank and
#     the signal, and the newest checkpoint must then resume in one process to max_steps.
#  2. An error on one rank only (rank 1 gets a missing data.path; MPMD launch) must end the job
#     with a non-zero exit within ERROR_BOUND_S and exactly one liandan line on stderr,
#     "liandan: rank 1 of 2: error: ..." (rank 0 would otherwise wait in a collective forever).
# Exits 77 (ctest: skipped) when MPIEXEC is missing.
set -uo pipefail

liandan=${1:?usage: fault_test.sh LIANDAN MPIEXEC CORPUS}
mpiexec=${2:-}
corpus=${3:?usage: fault_test.sh LIANDAN MPIEXEC CORPUS}
readonly KILL_BOUND_S=15 ERROR_BOUND_S=30 STEPS=200

if [[ -z $mpiexec || $mpiexec == *NOTFOUND* ]] || ! command -v "$mpiexec" >/dev/null; then
  echo "skipped: no mpirun ('$mpiexec'); this test needs Open MPI (apt install openmpi-bin)"
  exit 77
fi
[[ -x $liandan ]] || { echo "FAIL: $liandan is not an executable"; exit 1; }
[[ -f $corpus ]] || { echo "FAIL: no corpus at $corpus"; exit 1; }
liandan=$(readlink -f "$liandan") corpus=$(readlink -f "$corpus")  # the test runs in a temporary folder
export OMP_NUM_THREADS=1
# shellcheck disable=SC2054  # "self,vader" is one word: the btl list
mpi=("$mpiexec" --oversubscribe --allow-run-as-root --mca btl self,vader)

work=$(mktemp -d /tmp/liandan_fault.XXXXXX)
job=
cleanup() {
  [[ -n $job ]] && kill -9 "$job" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1

fail() {
  echo "FAIL: $*"
  for f in job.err resume.out resume.err error.err; do
    [[ -s $f ]] && { echo "--- $f"; tail -n 20 "$f"; }
  done
  exit 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

prepare_data() {
  head -c 200000 "$corpus" >corpus.txt
  "$liandan" tokenizer train --input corpus.txt --vocab-size 512 --special '<|endoftext|>' --out tok >prep.log 2>&1 ||
    fail "tokenizer train: $(tail -n 1 prep.log)"
  "$liandan" data prepare --input corpus.txt --format text --tokenizer tok --out data --val-fraction 0.05 \
    >prep.log 2>&1 || fail "data prepare: $(tail -n 1 prep.log)"
  cat >run.yaml <<EOF
model: {type: gpt2, n_layer: 2, n_head: 2, n_embd: 64, vocab_size: 512, n_positions: 64}
data: {path: data}
train: {batch_size: 4, seq_len: 64, max_steps: $STEPS, lr: 1e-3, warmup_steps: 10, seed: 1234}
eval: {every: 0}
checkpoint: {every: 20, keep_last: 0}
log: {every: 10}
output_dir: run
EOF
}

# Whether PID descends from ANCESTOR (the liandan ranks are mpirun's children, or its daemon's).
descends_from() {
  local pid=$1 ancestor=$2
  while [[ $pid -gt 1 ]]; do
    pid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [[ -n $pid ]] || return 1
    [[ $pid == "$ancestor" ]] && return 0
  done
  return 1
}

# The pid of the liandan process with OMPI_COMM_WORLD_RANK=RANK under mpirun JOB.
rank_pid() {
  local rank=$1 p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [[ $(cat "$p/comm" 2>/dev/null) == liandan ]] || continue
    tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$rank" || continue
    descends_from "$pid" "$job" && { echo "$pid"; return 0; }
  done
  return 1
}

first_checkpoint() { compgen -G "run/checkpoints/step-*/trainer_state.json" >/dev/null; }

kill_rank_and_resume() {
  "${mpi[@]}" -np 2 "$liandan" pretrain --config run.yaml >job.out 2>job.err &
  job=$!
  local deadline=$(($(now_ms) + 60000))
  until first_checkpoint; do
    kill -0 "$job" 2>/dev/null || fail "the 2-rank job ended before its first checkpoint"
    (($(now_ms) < deadline)) || fail "no checkpoint after 60 s"
    sleep 0.05
  done
  local victim
  victim=$(rank_pid 1) || fail "no liandan process with OMPI_COMM_WORLD_RANK=1 under mpirun $job"
  kill -9 "$victim"
  local killed_at
  killed_at=$(now_ms)
  while kill -0 "$job" 2>/dev/null && (($(now_ms) - killed_at < KILL_BOUND_S * 1000)); do sleep 0.05; done
  kill -0 "$job" 2>/dev/null && fail "mpirun still running ${KILL_BOUND_S} s after rank 1 (pid $victim) was killed"
  wait "$job"
  local rc=$? took=$(($(now_ms) - killed_at))
  job=
  echo "mpirun exited with $rc ${took} ms after kill -9 of rank 1 (pid $victim); bound ${KILL_BOUND_S} s"
  ((rc != 0)) || fail "mpirun exited 0 after a rank was killed"
  grep -Eq "rank 1 .*(signal 9|Killed)" job.err || fail "mpirun's stderr does not name rank 1 and signal 9"
  echo "mpirun: $(grep -E -m1 "rank 1 .*(signal 9|Killed)" job.err | sed 's/^ *//')"

  local newest
  newest=$(compgen -G "run/checkpoints/step-*" | sort | tail -n 1)
  "$liandan" pretrain --config run.yaml --resume "$newest" >resume.out 2>resume.err ||
    fail "resuming $newest in one process failed"
  grep -q "^resuming from $newest" resume.out || fail "the resume did not say it resumed from $newest"
  grep -q "^step $STEPS/$STEPS " resume.out || fail "the resumed run did not reach step $STEPS"
  [[ -f run/checkpoints/step-$(printf %06d "$STEPS")/trainer_state.json ]] || fail "no final checkpoint"
  echo "resumed $newest in one process to step $STEPS"
}

error_on_one_rank() {
  local started rc took lines
  started=$(now_ms)
  timeout "$ERROR_BOUND_S" "${mpi[@]}" -np 1 "$liandan" pretrain --config run.yaml --output_dir=run_err : \
    -np 1 "$liandan" pretrain --config run.yaml --output_dir=run_err --data.path=missing_data >error.out 2>error.err
  rc=$? took=$(($(now_ms) - started))
  ((rc != 124 && rc != 137)) || fail "the job with an error on rank 1 still ran after ${ERROR_BOUND_S} s"
  ((rc != 0)) || fail "the job with an error on rank 1 exited 0"
  lines=$(grep -c '^liandan' error.err)
  ((lines == 1)) || fail "expected one liandan line on stderr, got $lines"
  grep -Eq '^liandan: rank 1 of 2: error: .*missing_data' error.err ||
    fail "the error line does not read 'liandan: rank 1 of 2: error: ...missing_data...'"
  echo "error on rank 1: exit $rc after ${took} ms: $(grep '^liandan' error.err)"
}

prepare_data
kill_rank_and_resume
error_on_one_rank
echo "ok"
