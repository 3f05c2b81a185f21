#!/usr/bin/env bash
# Installs what splitconv needs from Debian's packages (skipping what is present) and builds it.
# Usage: tools/setup.sh [BUILD_DIR]   (default: build).
# Env: SPLITCONV_CUDA=AUTO|ON|OFF, SPLITCONV_ONNX=AUTO|ON|OFF (OFF: no ONNX library installed),
#      SPLITCONV_SETUP_TESTS=1 (tools/test.sh): also the Python modules of the script tests.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

packages=(cmake ninja-build g++ pkg-config libeigen3-dev libcli11-dev nlohmann-json3-dev
          zlib1g-dev libgtest-dev ca-certificates git python3)
# ONNX import and export: the ONNX library and the protobuf it was built with.
if [[ "${SPLITCONV_ONNX:-AUTO}" != OFF ]]; then
  packages+=(libonnx-dev libprotobuf-dev)
  # The export test reads exported models with the ONNX checker and OpenCV's DNN module.
  [[ "${SPLITCONV_SETUP_TESTS:-0}" != 1 ]] || packages+=(python3-onnx python3-opencv)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSPLITCONV_CUDA="${SPLITCONV_CUDA:-AUTO}" -DSPLITCONV_ONNX="${SPLITCONV_ONNX:-AUTO}" \
  -DSPLITCONV_NATIVE="${SPLITCONV_NATIVE:-ON}" >&2
cmake --build "$build_dir" -j "$jobs" >&2
echo "setup: built $build_dir/splitconv" >&2
