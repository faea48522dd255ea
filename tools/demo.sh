#!/usr/bin/env bash
# Installs what is needed, builds liandan (Release) and runs the demo: a 2-layer GPT trained for 50
# steps on generated data, printing the loss as it falls.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target liandan
build/release/liandan demo "$@"
