#!/usr/bin/env bash
# The SVD-split experiment of docs/results-svd.md: train, split a trained layer by the SVD of
# its kernel at several ranks (with and without a ReLU between the pair), evaluate right after
# the split, fine-tune one epoch, and compare with the split model trained from scratch.
#
# usage: [BIN=build/splitconv] [OUT=/tmp/svd] [DEVICE=cpu] [SEEDS="0 1 2"] tools/svd-experiment.sh [seed|wide5|all]
#   seed   seed-v0's conv3 at ranks 64, 32, 16 (5 epochs of MNIST first)
#   wide5  wide5-v0's conv2 and conv3 at ranks 64, 32 (2 epochs of 20,000 images)
#   all    both (the default)
# SEEDS: the seeds of the seed part (default 0), each training's --seed; seed 0 writes into
# OUT, seed S into OUT/seedS. tools/svd-summary.py OUT tabulates them across the seeds.
# Every run writes OUT/NAME.json; the log of commands goes to stderr. Relative paths (BIN, OUT,
# SPLITCONV_DATA) are taken from the current directory; BIN defaults to build/splitconv and the
# data to data/, both in the repository.
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
abs() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$here/$1"; fi; }
usage_line="usage: tools/svd-experiment.sh [seed|wide5|all]; --help"
case "$#:${1:-all}" in
  [01]:seed | [01]:wide5 | [01]:all) WHAT=${1:-all} ;;
  1:-h | 1:--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  1:*) echo "svd-experiment: unknown argument '$1' ($usage_line)" >&2; exit 2 ;;
  *) echo "svd-experiment: one argument at most, got $# ($usage_line)" >&2; exit 2 ;;
esac
BIN="$(abs "${BIN:-$root/build/splitconv}")"
OUT="$(abs "${OUT:-/tmp/svd}")"
DEVICE=${DEVICE:-cpu}
export SPLITCONV_DATA="$(abs "${SPLITCONV_DATA:-$root/data}")"
SEEDS=${SEEDS:-0}
for S in $SEEDS; do
  [[ $S =~ ^[0-9]+$ ]] || { echo "svd-experiment: SEEDS holds '$S', not a seed (0, 1, ...)" >&2; exit 2; }
done

cd "$root"
mkdir -p "$OUT"
sc() { echo "+ splitconv $*" >&2; "$BIN" "$@"; }

seed_part() {  # seed_part S OUTDIR
  local S=$1 OUT=$2
  mkdir -p "$OUT"
  sc train models/seed-v0.net --dataset mnist --device "$DEVICE" --epochs 5 --seed "$S" \
    --save "$OUT/v0.safetensors" --json "$OUT/v0.train.json"
  for K in 64 32 16; do
    for MID in none relu; do
      N=v0-conv3-k$K-$MID
      sc factorize models/seed-v0.net --checkpoint "$OUT/v0.safetensors" --layers conv3 \
        --rank "$K" --mid "$MID" -o "$OUT/$N.safetensors" --json "$OUT/$N.split.json"
      sc evaluate "$OUT/$N.safetensors" --dataset mnist --device "$DEVICE" --json "$OUT/$N.eval.json"
      sc train --init "$OUT/$N.safetensors" --dataset mnist --device "$DEVICE" --epochs 1 \
        --seed "$S" --json "$OUT/$N.ft.json"
    done
  done
  # Control: one more epoch of the unsplit model (fresh optimizer, as the fine-tunes).
  sc train --init "$OUT/v0.safetensors" --dataset mnist --device "$DEVICE" --epochs 1 \
    --seed "$S" --json "$OUT/v0-more.ft.json"
  # Full rank, nothing between: the same function as conv3, so the same accuracy.
  sc factorize models/seed-v0.net --checkpoint "$OUT/v0.safetensors" --layers conv3 --rank 192 \
    --mid none -o "$OUT/v0-conv3-k192-none.safetensors" --json "$OUT/v0-conv3-k192-none.split.json"
  sc evaluate "$OUT/v0-conv3-k192-none.safetensors" --dataset mnist --device "$DEVICE" \
    --json "$OUT/v0-conv3-k192-none.eval.json"
  sc train models/seed-v1.net --dataset mnist --device "$DEVICE" --epochs 5 --seed "$S" \
    --json "$OUT/v1.train.json"
}

if [[ $WHAT == seed || $WHAT == all ]]; then
  for S in $SEEDS; do
    if [[ $S == 0 ]]; then seed_part 0 "$OUT"; else seed_part "$S" "$OUT/seed$S"; fi
  done
fi

if [[ $WHAT == wide5 || $WHAT == all ]]; then
  # 2 epochs of the first 20,000 training images keep this within minutes on 2 CPU cores.
  W=(--dataset mnist --device "$DEVICE" --limit 20000)
  sc train models/wide5-v0.net "${W[@]}" --epochs 2 --save "$OUT/w5.safetensors" --json "$OUT/w5.train.json"
  sc train --init "$OUT/w5.safetensors" "${W[@]}" --epochs 1 --json "$OUT/w5-more.ft.json"
  # What --energy would pick (report only, nothing written).
  sc factorize --checkpoint "$OUT/w5.safetensors" --layers conv2,conv3 --energy 0.9
  for K in 64 32; do
    for MID in none relu; do
      N=w5-conv23-k$K-$MID
      sc factorize models/wide5-v0.net --checkpoint "$OUT/w5.safetensors" --layers conv2,conv3 \
        --rank "$K" --mid "$MID" -o "$OUT/$N.safetensors" --json "$OUT/$N.split.json"
      sc evaluate "$OUT/$N.safetensors" --dataset mnist --device "$DEVICE" --json "$OUT/$N.eval.json"
      sc train --init "$OUT/$N.safetensors" "${W[@]}" --epochs 1 --json "$OUT/$N.ft.json"
    done
    # The same split architecture (ReLU between the pair, as seed-v1) trained from scratch.
    sc factorize models/wide5-v0.net --layers conv2,conv3 --rank "$K" --mid relu -o "$OUT/w5-k$K.net"
    sc train "$OUT/w5-k$K.net" "${W[@]}" --epochs 2 --json "$OUT/w5-k$K.scratch.json"
  done
fi
