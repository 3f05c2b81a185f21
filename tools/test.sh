#!/usr/bin/env bash
# Set-up (tools/setup.sh: packages, build), MNIST (tools/fetch-data.sh), every test through
# ctest, then a short fuzz run of the input parsers (tools/fuzz.sh) when clang with libFuzzer
# is present.
#
# usage: tools/test.sh [--gpu] [--fuzz | --no-fuzz] [--sanitize]
#   --gpu      only the GPU tests, and fail (not skip) without a CUDA device; no fuzz run
#   --fuzz     also install clang (tools/setup.sh --fuzz) and fail when the fuzz run cannot
#              run (CI)
#   --no-fuzz  no fuzz run
#   --sanitize then the CPU tests again, built with AddressSanitizer and
#              UndefinedBehaviorSanitizer (CUDA off, -O1) in build-asan (CI; ~12 min on 2 cores)
#   -h, --help this text
# env: SPLITCONV_DATA  the data directory (default: data in the repository)
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
bad() { echo "test: $* (usage: tools/test.sh [--gpu] [--fuzz | --no-fuzz] [--sanitize]; --help)" >&2; exit 2; }
gpu_only=0 fuzz=auto sanitize=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpu) gpu_only=1 ;;
    --fuzz) fuzz=yes ;;
    --no-fuzz) fuzz=no ;;
    --sanitize) sanitize=1 ;;
    -h | --help) sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bad "unknown argument '$1'" ;;
  esac
  shift
done
((gpu_only)) && [[ $fuzz == yes ]] && bad "--gpu runs no fuzzing; --fuzz goes without it"
((gpu_only && sanitize)) && bad "--gpu runs no sanitizer build; --sanitize goes without it"
setup_flags=()
[[ $fuzz == yes ]] && setup_flags=(--fuzz)
data="${SPLITCONV_DATA:-$root/data}"
[[ "$data" == /* ]] || data="$here/$data"
export SPLITCONV_DATA="$data"

"$root/tools/setup.sh" "${setup_flags[@]}" "$root/build"
cd "$root"
# The data lets the tests that train on real MNIST run; without it they skip and say so.
tools/fetch-data.sh --dataset mnist "$data" >&2 || echo "test: MNIST not fetched; its tests will skip" >&2
jobs=$(nproc 2>/dev/null || echo 2)
if ((gpu_only)); then
  ./build/splitconv devices
  ./build/splitconv devices --json build/devices.json >/dev/null
  if ! grep -q '"index"' build/devices.json; then
    echo "test --gpu: no CUDA device present; the GPU tests cannot run here" >&2
    exit 1
  fi
  SPLITCONV_REQUIRE_GPU=1 ctest --test-dir build -L gpu --no-tests=error --output-on-failure -j "$jobs"
  exit 0
fi
ctest --test-dir build --output-on-failure -j "$jobs"
case "$fuzz" in
  yes) tools/fuzz.sh ;;
  auto) if tools/fuzz.sh --available 2>/dev/null; then
          tools/fuzz.sh
        else
          echo "test: no clang with libFuzzer: no fuzz run (tools/test.sh --fuzz installs it)" >&2
        fi ;;
esac
if ((sanitize)); then
  # The same CPU tests on a build with both sanitizers; any finding fails its test (the CLI
  # tests run the sanitized binary too). Leak checks stay on. -O1: on a 2-core machine it
  # builds in about half the time of -O3 (9.4 against about 20 minutes) and its tests take
  # about as long (94 against 84 s).
  echo "test: the CPU tests again under AddressSanitizer and UndefinedBehaviorSanitizer (build-asan)" >&2
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" \
    -DSPLITCONV_CUDA=OFF \
    -DSPLITCONV_SANITIZE=ON -DSPLITCONV_NATIVE="${SPLITCONV_NATIVE:-ON}" >&2
  cmake --build build-asan -j "$jobs" >&2
  ASAN_OPTIONS=abort_on_error=0:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L cpu --output-on-failure -j "$jobs"
fi
