#!/usr/bin/env bash
# Installs the Debian packages liandan builds with (Debian 12), and with --tests also what the tests
# and benchmarks compare against. Skips apt entirely when everything is already there, so repeated
# runs cost nothing.
set -euo pipefail

packages=(
  cmake ninja-build g++ ccache pkg-config
  libdnnl-dev            # oneDNN: sgemm for the CPU backend (picks AVX-512 kernels by CPUID)
  libomp-dev             # OpenMP headers/runtime alongside GCC's libgomp
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libgtest-dev           # the build compiles the test executables too
  libpcre2-dev libutf8proc-dev   # tokenizer: regex pre-tokenization, Unicode normalisation
  zlib1g-dev libzstd-dev         # data: .gz and .zst corpora
  fortunes fortunes-zh           # the demo's corpus (English and Chinese)
  wordnet-base                   # data augment: WordNet synonyms (/usr/share/wordnet)
  openmpi-bin libopenmpi-dev     # dist: multi-process training under mpirun (LIANDAN_MPI)
)
test_packages=(
  python3-torch python3-numpy  # PyTorch 1.13 CPU: the numerical oracle in tests and the speed peer in bench/
  python3-nltk           # BLEU reference (corpus_bleu) for the metrics tests
  python3-jinja2         # chat template reference renderer for the jinja tests
  libopenblas0-openmp    # so python3-torch's BLAS is OpenBLAS, not the 10-40x slower reference BLAS
  sentencepiece          # tokenizer tests/bench: spm_encode/spm_train
)

with_tests=0
[ "${1:-}" = "--tests" ] && with_tests=1
[ $with_tests -eq 1 ] && packages+=("${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ $with_tests -eq 1 ]; then  # node runs the tokenizer reference encoders
  command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
