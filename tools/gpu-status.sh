#!/usr/bin/env bash
# What to verify first on the next GPU: from the records of GPU runs (docs/gpu/*.json, written
# by tools/gpu-check.sh) and git, the recorded runs, the GPU tests that failed in the last one,
# and the GPU code (cuda/, include/, tests/gpu/, host/fused/, and the two host/ files the CUDA
# library compiles) changed since it: `git diff --stat COMMIT..HEAD` of those paths, or, where the run
# was on uncommitted code, its recorded source trees against HEAD's. Says "no GPU run recorded"
# when there is none. Rehearsal records are left out.
#
# usage: tools/gpu-status.sh [--repo DIR] [--records DIR]
#   --repo DIR      the git repository (default: the one this script is in)
#   --records DIR   the records (default: REPO/docs/gpu)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for a in "$@"; do
  case "$a" in
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done
command -v python3 >/dev/null || { echo "gpu-status: python3 is missing" >&2; exit 1; }
GPU_RECORD_PROG=gpu-status exec python3 "$here/gpu_record.py" status "$@"
