#!/usr/bin/env bash
# expect_error.sh BINARY REGEX ARGS...: the command must exit non-zero and print exactly one line on
# stderr, matching REGEX, and nothing on stdout.
bin=$1; pattern=$2; shift 2
out=$(mktemp); err=$(mktemp); trap 'rm -f "$out" "$err"' EXIT
"$bin" "$@" >"$out" 2>"$err"; rc=$?
if [ "$rc" -eq 0 ]; then echo "expected a non-zero exit, got 0"; cat "$out" "$err"; exit 1; fi
lines=$(wc -l <"$err")
if [ "$lines" -ne 1 ]; then echo "expected one line on stderr, got $lines:"; cat "$err"; exit 1; fi
if ! grep -Eq -- "$pattern" "$err"; then echo "stderr does not match '$pattern':"; cat "$err"; exit 1; fi
if [ -s "$out" ]; then echo "expected nothing on stdout:"; cat "$out"; exit 1; fi
echo "ok: exit $rc, stderr: $(cat "$err")"
