#!/usr/bin/env bash
# Builds here what bench/cuda/device_checks.sh runs on a lent GPU machine and packs it into
# .device_bundle/bundle.tar.xz (ignored by git): that machine's image has nvcc, PyTorch, CMake and
# ninja but none of liandan's libraries (oneDNN, yaml-cpp, CLI11, PCRE2, utf8proc, GoogleTest), and
# nothing can be installed there, so liandan cannot be built on it. Prebuilt, it also spends none of
# the window's 15 minutes compiling.
#
#   bench/cuda/make_device_bundle.sh            then, on the device tool:
#   run(command="OUT=$OUT bash bench/cuda/device_checks.sh", carry=[".device_bundle"], timeout_s=600)
#
# The bundle holds (paths relative to the repository root, as the binaries expect them):
#   build/cuda-bundle/{liandan, tests/cuda/cuda_tests, bench/liandan_bench_train,
#     bench/liandan_bench_generate, bench/cuda/liandan_bench_cuda}: LIANDAN_CUDA=ON, Release, MPI off,
#     -march=x86-64-v3 (not -march=native: the GPU machine's CPU is another one);
#   lib/: every shared library they load except glibc's and cuBLAS (hundreds of MB, and the GPU
#     machine has its own CUDA 13); the C++ runtime in lib/fallback, for a machine whose own is older;
#   peer/: the peer's bench_train.py, bench_infer.py, gpt_model.py (../shared does not travel);
#   shared/tokenizers/gpt2: the tokenizer cuda_generate_test reads from ../shared.
# The binaries carry this checkout's absolute paths (tests/CMakeLists.txt); device_checks.sh links
# them to where the bundle lands. Environment: BUILD_DIR (default build/cuda-bundle), JOBS (2).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${BUILD_DIR:-build/cuda-bundle}
jobs=${JOBS:-2}
shared=$(cd .. && pwd)/shared
out=.device_bundle
targets=(cuda_tests liandan liandan_bench_train liandan_bench_generate liandan_bench_cuda)
binaries=(liandan tests/cuda/cuda_tests bench/liandan_bench_train bench/liandan_bench_generate
  bench/cuda/liandan_bench_cuda)

echo "make_device_bundle: configuring and building ${targets[*]} in $build" >&2
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLIANDAN_WERROR=ON -DLIANDAN_CUDA=ON \
  -DLIANDAN_NATIVE=OFF -DLIANDAN_MPI=OFF -DLIANDAN_NCCL=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3 >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib/fallback" "$stage/peer" "$stage/shared/tokenizers"
for b in "${binaries[@]}"; do
  mkdir -p "$stage/$build/$(dirname "$b")"
  cp "$build/$b" "$stage/$build/$b"
done
# Libraries: what ldd resolves, less the C library family and cuBLAS, which the GPU machine has.
# The C++ runtime goes to lib/fallback, used only where the machine's own is older than the one
# built against: this one needs glibc 2.36, the binaries and other libraries 2.35.
system='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libcublas|libcublasLt)\.so'
fallback='^(libstdc\+\+|libgcc_s)\.so'
for b in "${binaries[@]}"; do ldd "$build/$b"; done | awk '$3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    if [[ $name =~ $fallback ]]; then
      cp -L "$path" "$stage/lib/fallback/$name"
    elif ! [[ $name =~ $system ]]; then
      cp -L "$path" "$stage/lib/$name"
    fi
  done
missing=$(for b in "${binaries[@]}"; do ldd "$build/$b"; done | grep "not found" || true)
[ -z "$missing" ] || { echo "make_device_bundle: unresolved libraries here: $missing" >&2; exit 1; }
cp "$shared"/bench/{bench_train.py,bench_infer.py,gpt_model.py} "$stage/peer/"
cp -r "$shared/tokenizers/gpt2" "$stage/shared/tokenizers/"
echo "$root" >"$stage/built_at"  # the absolute path compiled into the binaries
git rev-parse --short HEAD >"$stage/commit"

mkdir -p "$out"
tmp="$out/bundle.tar.xz.tmp"
tar -C "$stage" -cf - . | xz -6 -T"$jobs" >"$tmp"
mv "$tmp" "$out/bundle.tar.xz"
size=$(stat -c %s "$out/bundle.tar.xz")
echo "make_device_bundle: $out/bundle.tar.xz, $((size / 1048576)) MiB (commit $(cat "$stage/commit")); libraries:" \
  "$(cd "$stage/lib" && find . -type f | sort | tr '\n' ' ')" >&2
if [ "$size" -gt $((56 * 1048576)) ]; then
  echo "make_device_bundle: over 56 MiB; with the working tree it would not fit the device's 64 MiB" >&2
  exit 1
fi
