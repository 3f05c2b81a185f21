#!/usr/bin/env bash
# The notebook's experiment in one command: set-up (tools/setup.sh: packages, build), MNIST
# (tools/fetch-data.sh), then seed-v0 against seed-v1 on MNIST, on the best device present.
#
# usage: tools/run.sh [COMPARE_OPTIONS...]
#   COMPARE_OPTIONS  passed to `splitconv compare` (e.g. --epochs 1 --seeds 3 --device cpu);
#                    it refuses an unknown one with one line and exit 2, before any training.
#                    Relative paths in them are taken from the current directory. Defaults
#                    where not given: --dataset mnist --device auto --progress, and the JSON
#                    report to build/compare.json; with a CUDA device (and --device not
#                    cpu) --seeds 5, which there takes seconds a seed and ends in the paired
#                    verdict; on the CPU one seed, and it says how to get the verdict.
#   -h, --help       this text
# env: SPLITCONV_DATA  the data directory (default: data in the repository); --data-dir
#      overrides it. The dataset compare reads (--dataset, default mnist) is fetched first.
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
# The defaults below, each left out where the caller gives the option (given twice, compare
# would refuse it).
declare -A given=()
args=("$@") dataset=mnist device=auto data="${SPLITCONV_DATA:-$root/data}"
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
    --device) device="$next" ;;
    --device=*) device="${a#--device=}" ;;
  esac
  case "$a" in
    --json | --json=* | --dataset | --dataset=* | --device | --device=* | --progress | --seeds | --seeds=*)
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
"$bin" devices --json "$root/build/devices.json"
echo
# A CUDA device is there when the report lists one (each has an "index").
gpu=0
grep -q '"index"' "$root/build/devices.json" && gpu=1
"$bin" analyze "$v0" "$v1"
echo
defaults=()
[[ -n "${given[--dataset]:-}" ]] || defaults+=(--dataset mnist)
[[ -n "${given[--device]:-}" ]] || defaults+=(--device auto)
[[ -n "${given[--progress]:-}" ]] || defaults+=(--progress)
[[ -n "${given[--json]:-}" ]] || defaults+=(--json "$root/build/compare.json")
seeds_default=0
if [[ -z "${given[--seeds]:-}" && $gpu == 1 && $device != cpu ]]; then
  defaults+=(--seeds 5)
  seeds_default=1
fi
"$bin" compare "$v0" "$v1" "${defaults[@]}" "$@"
if [[ -z "${given[--seeds]:-}" && $seeds_default == 0 ]]; then
  echo
  echo "One seed per model: the seed-to-seed spread (0.1-0.2 points) is as large as the difference."
  echo "For the paired verdict over seeds: tools/run.sh --seeds 10 (on the CPU, tens of minutes),"
  echo "or docs/results.md sections 7 and 8 (10 seeds on MNIST and Fashion-MNIST)."
fi
