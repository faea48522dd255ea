#!/usr/bin/env bash
# Installs the Debian packages liandan builds and tests with (Debian 12). Skips apt entirely when
# everything is already there, so repeated runs cost nothing.
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache pkg-config
  libdnnl-dev            # oneDNN: sgemm for the CPU backend (picks AVX-512 kernels by CPUID)
  libomp-dev             # OpenMP headers/runtime alongside GCC's libgomp
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libgtest-dev
  libpcre2-dev libutf8proc-dev   # tokenizer: regex pre-tokenization, Unicode normalisation
  sentencepiece fortunes fortunes-zh  # tokenizer tests/bench: spm_encode/spm_train peer, English and Chinese text
  python3-torch          # PyTorch 1.13 CPU: the numerical oracle in tests and the speed peer in bench/
  libopenblas0-openmp    # so python3-torch's BLAS is OpenBLAS, not the 10-40x slower reference BLAS
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)  # tokenizer reference encoders
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
