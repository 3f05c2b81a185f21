#!/usr/bin/env bash
# One conv layer at a time on the CPU, splitconv against PyTorch in one run: for each shape,
# `splitconv bench conv --device cpu` and tools/peer/pytorch_conv.py (PyTorch's Conv2d) time
# the 3x3 conv and its 3x1 + 1x3 pair, forward + backward (bias and ReLU after each conv, the
# input's gradient included), batch 32, valid padding; prints milliseconds and the ratios.
#
# usage: tools/bench/conv-vs-pytorch.sh [THREADS [RUNS]]
#   THREADS  CPU threads of both (default 2)
#   RUNS     timed samples of each side, the median reported (default 7)
# Shapes (c -> m on an HxW map): 64->64 5x5, 64->64 56x56, 256->256 14x14.
# Needs Debian's python3-torch (tools/setup.sh --optional installs it). Run after
# tools/setup.sh (the binary build/splitconv).
set -euo pipefail
usage_line="usage: tools/bench/conv-vs-pytorch.sh [THREADS [RUNS]]; --help"
case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
(($# <= 2)) || { echo "conv-vs-pytorch: at most 2 arguments, got $# ($usage_line)" >&2; exit 2; }
threads=${1:-2}
runs=${2:-7}
[[ $threads =~ ^[1-9][0-9]{0,3}$ ]] || { echo "conv-vs-pytorch: THREADS '$threads': expected 1 to 9999 ($usage_line)" >&2; exit 2; }
[[ $runs =~ ^[1-9][0-9]{0,2}$ ]] || { echo "conv-vs-pytorch: RUNS '$runs': expected 1 to 999 ($usage_line)" >&2; exit 2; }
cd "$(dirname "$0")/../.."
py=/usr/bin/python3
$py -c 'import torch' 2>/dev/null || { echo "conv-vs-pytorch: PyTorch is missing (apt-get install python3-torch, or tools/setup.sh --optional)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

shapes=("64 64 5x5" "64 64 56x56" "256 256 14x14")
i=0
for s in "${shapes[@]}"; do
  read -r c m size <<<"$s"
  ./build/splitconv bench conv --device cpu --n 3 --c "$c" --m "$m" --size "$size" --batch 32 \
    --threads "$threads" --runs "$runs" --json "$out/sc$i.json" >/dev/null
  $py tools/peer/pytorch_conv.py --n 3 --c "$c" --m "$m" --size "$size" --batch 32 \
    --threads "$threads" --runs "$runs" >"$out/pt$i.json"
  i=$((i + 1))
done

$py - "$out" "${#shapes[@]}" "$threads" <<'PY'
import json, sys
out, count, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = []
for i in range(count):
    sc = json.load(open(f"{out}/sc{i}.json"))
    pt = json.load(open(f"{out}/pt{i}.json"))
    s = sc["shape"]
    scs = {v["side"]: v["train_ms"] for v in sc["variants"] if v["impl"] == "cpu"}
    pts = {v["side"]: v["train_ms"] for v in pt["sides"]}
    rows.append((f"{s['c']}->{s['m']}, {s['h']}x{s['w']}", pts["nxn"], scs["nxn"], pts["pair"], scs["pair"]))
print(f"one conv layer, batch 32, forward + backward, threads {threads}, torch {pt['torch']}; ms")
print(f"{'layer':18} {'pytorch 3x3':>12} {'splitconv 3x3':>14} {'ratio':>6} {'pytorch pair':>13} {'splitconv pair':>15} {'ratio':>6}")
for name, p3, s3, pp, sp in rows:
    print(f"{name:18} {p3:12.3f} {s3:14.3f} {p3 / s3:6.2f} {pp:13.3f} {sp:15.3f} {pp / sp:6.2f}")
print("ratio: PyTorch's time / splitconv's (above 1: splitconv is faster)")
PY
