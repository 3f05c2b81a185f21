#!/usr/bin/env bash
# The notebook's experiment in one command: set-up (tools/setup.sh: packages, build), MNIST
# (tools/fetch-data.sh), then seed-v0 against seed-v1 on MNIST, on the best device present.
#
# usage: tools/run.sh [COMPARE_OPTIONS...]
#   COMPARE_OPTIONS  passed to `splitconv compare` (e.g. --epochs 1 --seeds 3 --device cpu);
#                    it refuses an unknown one with one line and exit 2, before any training.
#                    Relative paths in them are taken from the current directory. Defaults
#                    where not given: --dataset mnist --device auto --progress, and the JSON
#                    report to build/compare.json.
#   -h, --help       this text
# env: SPLITCONV_DATA  the data directory (default: data in the repository); --data-dir
#      overrides it. The dataset compare reads (--dataset, default mnist) is fetched first.
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
# The defaults below, each left out where the caller gives the option (given twice, compare
# would refuse it).
declare -A given=()
args=("$@") dataset=mnist data="${SPLITCONV_DATA:-$root/data}"
for ((i = 0; i < ${#args[@]}; i++)); do
  a="${args[i]}" next="${args[i + 1]:-}"
  case "$a" in
    -h | --help) sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --dataset) dataset="$next" ;;
    --dataset=*) dataset="${a#--dataset=}" ;;
    --data-dir) data="$next" ;;
    --data-dir=*) data="${a#--data-dir=}" ;;
  esac
  case "$a" in
    --json | --json=* | --dataset | --dataset=* | --device | --device=* | --progress)
      given[${a%%=*}]=1 ;;
  esac
done
[[ "$data" == /* ]] || data="$here/$data"
export SPLITCONV_DATA="$data"

"$root/tools/setup.sh" "$root/build"
# The dataset compare will read (an unknown name is left for compare to refuse).
case "$dataset" in
  mnist | fashion-mnist) "$root/tools/fetch-data.sh" --dataset "$dataset" "$data" >&2 ;;
esac
bin="$root/build/splitconv"
# The models as seen from here, so the tables name them as the user would.
v0="$(realpath --relative-to="$here" "$root/models/seed-v0.net")"
v1="$(realpath --relative-to="$here" "$root/models/seed-v1.net")"
"$bin" devices
echo
"$bin" analyze "$v0" "$v1"
echo
defaults=()
[[ -n "${given[--dataset]:-}" ]] || defaults+=(--dataset mnist)
[[ -n "${given[--device]:-}" ]] || defaults+=(--device auto)
[[ -n "${given[--progress]:-}" ]] || defaults+=(--progress)
[[ -n "${given[--json]:-}" ]] || defaults+=(--json "$root/build/compare.json")
"$bin" compare "$v0" "$v1" "${defaults[@]}" "$@"
