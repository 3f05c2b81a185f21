#!/usr/bin/env bash
# The notebook's experiment in one command: set-up (tools/setup.sh: packages, build), MNIST
# (tools/fetch-data.sh), then seed-v0 against seed-v1 on MNIST, on the best device present.
#
# usage: tools/run.sh [COMPARE_OPTIONS...]
#   COMPARE_OPTIONS  passed to `splitconv compare` (e.g. --epochs 1 --seeds 3 --device cpu);
#                    it refuses an unknown one with one line and exit 2, before any training.
#                    Relative paths in them are taken from the current directory. The JSON
#                    report goes to build/compare.json unless --json is given.
#   -h, --help       this text
# env: SPLITCONV_DATA  the data directory (default: data in the repository)
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
json=1
for a in "$@"; do
  case "$a" in
    -h | --help) sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --json | --json=*) json=0 ;;
  esac
done
data="${SPLITCONV_DATA:-$root/data}"
[[ "$data" == /* ]] || data="$here/$data"
export SPLITCONV_DATA="$data"

"$root/tools/setup.sh" "$root/build"
"$root/tools/fetch-data.sh" --dataset mnist "$data" >&2
bin="$root/build/splitconv"
# The models as seen from here, so the tables name them as the user would.
v0="$(realpath --relative-to="$here" "$root/models/seed-v0.net")"
v1="$(realpath --relative-to="$here" "$root/models/seed-v1.net")"
"$bin" devices
echo
"$bin" analyze "$v0" "$v1"
echo
report=()
((json)) && report=(--json "$root/build/compare.json")
"$bin" compare "$v0" "$v1" --dataset mnist --device auto --progress "${report[@]}" "$@"
