#!/usr/bin/env bash
# Set-up (tools/setup.sh: packages, build), MNIST (tools/fetch-data.sh), every test through
# ctest, then a short fuzz run of the input parsers (tools/fuzz.sh) when clang with libFuzzer
# is present.
#
# usage: tools/test.sh [--gpu] [--fuzz | --no-fuzz]
#   --gpu      only the GPU tests, and fail (not skip) without a CUDA device; no fuzz run
#   --fuzz     also install clang (tools/setup.sh --fuzz) and fail when the fuzz run cannot
#              run (CI)
#   --no-fuzz  no fuzz run
#   -h, --help this text
# env: SPLITCONV_DATA  the data directory (default: data in the repository)
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
bad() { echo "test: $* (usage: tools/test.sh [--gpu] [--fuzz | --no-fuzz]; --help)" >&2; exit 2; }
gpu_only=0 fuzz=auto
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gpu) gpu_only=1 ;;
    --fuzz) fuzz=yes ;;
    --no-fuzz) fuzz=no ;;
    -h | --help) sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) bad "unknown argument '$1'" ;;
  esac
  shift
done
((gpu_only)) && [[ $fuzz == yes ]] && bad "--gpu runs no fuzzing; --fuzz goes without it"
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
