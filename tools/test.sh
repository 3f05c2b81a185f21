#!/usr/bin/env bash
# Set-up (packages, build, data), then the whole test suite through ctest.
# Usage: tools/test.sh [--gpu]   --gpu: only the GPU tests, and fail (not skip) without a device
set -euo pipefail
cd "$(dirname "$0")/.."
gpu_only=0
[[ "${1:-}" == "--gpu" ]] && gpu_only=1
# The CPU suite's script tests also need Python modules (the ONNX export test's).
SPLITCONV_SETUP_TESTS=$((1 - gpu_only)) tools/setup.sh build
# The data lets the tests that train on real MNIST run; without it they skip and say so.
tools/fetch-data.sh --dataset mnist >&2 || echo "test: MNIST not fetched; its tests will skip" >&2
export SPLITCONV_DATA="${SPLITCONV_DATA:-$PWD/data}"
jobs=$(nproc 2>/dev/null || echo 2)
if ((gpu_only)); then
  ./build/splitconv devices
  ./build/splitconv devices --json build/devices.json >/dev/null
  if ! grep -q '"index"' build/devices.json; then
    echo "test --gpu: no CUDA device present; the GPU tests cannot run here" >&2
    exit 1
  fi
  SPLITCONV_REQUIRE_GPU=1 ctest --test-dir build -L gpu --no-tests=error --output-on-failure -j "$jobs"
else
  ctest --test-dir build --output-on-failure -j "$jobs"
fi
