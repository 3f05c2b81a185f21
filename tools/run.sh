#!/usr/bin/env bash
# Set-up (packages, build, data), then the notebook's experiment: seed-v0 against seed-v1
# on MNIST, on the best device present. Extra arguments go to `splitconv compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
tools/fetch-data.sh --dataset mnist >&2
./build/splitconv devices
echo
./build/splitconv analyze models/seed-v0.net models/seed-v1.net
echo
./build/splitconv compare models/seed-v0.net models/seed-v1.net --dataset mnist --device auto \
  --progress --json build/compare.json "$@"
