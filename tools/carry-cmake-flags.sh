#!/usr/bin/env bash
# Prints the CMake flags that build splitconv against a carry made by tools/make-carry.sh,
# on a machine without the Debian packages (the GPU machine):
#   cmake -S . -B build -G Ninja $(tools/carry-cmake-flags.sh .carry)
# The packages' CMake configs locate themselves relative to their own files, so a prefix path
# finds Eigen3, nlohmann_json, CLI11 and GTest; FindZLIB looks under ZLIB_ROOT first and
# finds only libz.a there (make-carry drops the libz.so link that points out of the sysroot).
#
# usage: tools/carry-cmake-flags.sh [CARRY_DIR]   (default: .carry in the repository root; a
#        relative path is taken from the current directory)
set -euo pipefail
case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "carry-cmake-flags: unknown option '$1' (usage: tools/carry-cmake-flags.sh [CARRY_DIR]; --help)" >&2; exit 2 ;;
esac
(($# <= 1)) || { echo "carry-cmake-flags: one CARRY_DIR only, got $# arguments (usage: tools/carry-cmake-flags.sh [CARRY_DIR]; --help)" >&2; exit 2; }
carry="${1:-$(cd "$(dirname "$0")/.." && pwd)/.carry}"
if [[ ! -d "$carry/sysroot/usr" ]]; then
  echo "carry-cmake-flags: $carry/sysroot/usr not found; run tools/make-carry.sh" >&2
  exit 1
fi
usr="$(cd "$carry/sysroot/usr" && pwd)"
echo "-DCMAKE_PREFIX_PATH=$usr -DZLIB_ROOT=$usr"
