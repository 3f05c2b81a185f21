#!/usr/bin/env bash
# splitconv on the CPU against PyTorch on the CPU, in one run: the same model, batch, images
# and epochs; prints the ratio of images/s and of peak memory (maximum resident set size).
#
# usage: tools/bench/cpu-vs-pytorch.sh [MODEL [IMAGES [THREADS]]]
#   MODEL    v0 or v1 (seed-v0, seed-v1; default v0)
#   IMAGES   training images, one epoch (default 6000)
#   THREADS  CPU threads of both (default 2)
# env: SPLITCONV_DATA  the data directory (default data in the repository; relative: from the
#      current directory)
# Needs Debian's python3-torch and /usr/bin/time (package time): tools/setup.sh --optional
# installs both. Run after tools/setup.sh (the binary build/splitconv) and tools/fetch-data.sh.
set -euo pipefail
here="$PWD"
usage_line="usage: tools/bench/cpu-vs-pytorch.sh [v0|v1 [IMAGES [THREADS]]]; --help"
case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
(($# <= 3)) || { echo "cpu-vs-pytorch: at most 3 arguments, got $# ($usage_line)" >&2; exit 2; }
model=${1:-v0}
images=${2:-6000}
threads=${3:-2}
[[ $model == v0 || $model == v1 ]] || { echo "cpu-vs-pytorch: MODEL '$model': expected v0 or v1 ($usage_line)" >&2; exit 2; }
[[ $images =~ ^[1-9][0-9]{0,6}$ ]] || { echo "cpu-vs-pytorch: IMAGES '$images': expected 1 to 9999999 ($usage_line)" >&2; exit 2; }
[[ $threads =~ ^[1-9][0-9]{0,3}$ ]] || { echo "cpu-vs-pytorch: THREADS '$threads': expected 1 to 9999 ($usage_line)" >&2; exit 2; }
data=${SPLITCONV_DATA:-}
cd "$(dirname "$0")/../.."
[[ -z "$data" ]] && data="$PWD/data"
[[ "$data" == /* ]] || data="$here/$data"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
py=/usr/bin/python3
[[ -x /usr/bin/time ]] || { echo "cpu-vs-pytorch: /usr/bin/time is missing (apt-get install time, or tools/setup.sh --optional)" >&2; exit 2; }
$py -c 'import torch' 2>/dev/null || { echo "cpu-vs-pytorch: PyTorch is missing (apt-get install python3-torch, or tools/setup.sh --optional)" >&2; exit 2; }

/usr/bin/time -f '%M' -o "$out/sc.mem" ./build/splitconv train "models/seed-$model.net" \
  --dataset mnist --data-dir "$data" --device cpu --threads "$threads" --epochs 1 \
  --limit "$images" --json "$out/sc.json" >/dev/null
/usr/bin/time -f '%M' -o "$out/pt.mem" $py tools/peer/pytorch_seed.py --device cpu \
  --threads "$threads" --models "$model" --modes eager --epochs 1 --limit "$images" \
  --data-dir "$data" --json "$out/pt.json" >/dev/null

$py - "$out" "$model" "$images" "$threads" <<'PY'
import json, sys
out, model, images, threads = sys.argv[1:]
sc = json.load(open(f"{out}/sc.json"))
pt = json.load(open(f"{out}/pt.json"))["runs"][0]
sc_mem = int(open(f"{out}/sc.mem").read().split()[-1]) / 1024
pt_mem = int(open(f"{out}/pt.mem").read().split()[-1]) / 1024
ips_sc, ips_pt = sc["images_per_second"], pt["images_per_second"]
print(f"seed-{model}, {images} images, batch 32, 1 epoch, {threads} threads, torch {pt['torch']}")
print(f"{'':12} {'images/s':>10} {'peak MiB':>10}")
print(f"{'splitconv':12} {ips_sc:10.0f} {sc_mem:10.0f}")
print(f"{'pytorch':12} {ips_pt:10.0f} {pt_mem:10.0f}")
print(f"speed ratio splitconv/pytorch: {ips_sc / ips_pt:.2f}x; memory ratio: {sc_mem / pt_mem:.2f}x")
PY
