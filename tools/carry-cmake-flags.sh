#!/usr/bin/env bash
# Prints the CMake flags that build splitconv against a carry made by tools/make-carry.sh,
# on a machine without the Debian packages (the GPU machine):
#   cmake -S . -B build -G Ninja $(tools/carry-cmake-flags.sh .carry)
# The packages' CMake configs locate themselves relative to their own files, so a prefix path
# finds Eigen3, nlohmann_json, CLI11 and GTest; FindZLIB looks under ZLIB_ROOT first and
# finds only libz.a there (make-carry drops the libz.so link that points out of the sysroot).
set -euo pipefail
carry="${1:-$(cd "$(dirname "$0")/.." && pwd)/.carry}"
if [[ ! -d "$carry/sysroot/usr" ]]; then
  echo "carry-cmake-flags: $carry/sysroot/usr not found; run tools/make-carry.sh" >&2
  exit 1
fi
usr="$(cd "$carry/sysroot/usr" && pwd)"
echo "-DCMAKE_PREFIX_PATH=$usr -DZLIB_ROOT=$usr"
