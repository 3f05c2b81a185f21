#!/usr/bin/env bash
# splitconv on the CPU against PyTorch on the CPU, in one run: the same model, batch, images
# and epochs; prints the ratio of images/s and of peak memory (maximum resident set size).
# Usage: tools/bench/cpu-vs-pytorch.sh [MODEL=v0|v1] [IMAGES=6000] [THREADS=2]
# Needs Debian's python3-torch and /usr/bin/time (package time); run after tools/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:-v0}
images=${2:-6000}
threads=${3:-2}
data=${SPLITCONV_DATA:-$PWD/data}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
py=/usr/bin/python3
[[ -x /usr/bin/time ]] || { echo "cpu-vs-pytorch: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
$py -c 'import torch' 2>/dev/null || { echo "cpu-vs-pytorch: PyTorch is missing (apt-get install python3-torch)" >&2; exit 2; }

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
