#!/usr/bin/env bash
# tools/gpu-check.sh --rehearse on a machine without a GPU: every GPU step listed as skipped,
# exit 0, and a record that is valid JSON with every required key, null where nothing ran,
# at this commit and with this tree's GPU source hashes. The PyTorch peer is left out here
# (GPU_CHECK_SKIP): it needs PyTorch, which the test machines need not have.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-rehearsal-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

rc=0
# OUTDIR relative, from another directory than the repository: it is the caller's.
(cd "$work" && GPU_CHECK_SKIP=pytorch-peer "$root/tools/gpu-check.sh" --rehearse out) >"$work/log" 2>&1 || rc=$?
[[ $rc -eq 0 ]] || { cat "$work/log" >&2; fail "gpu-check --rehearse exited $rc"; }
shopt -s nullglob
records=("$work"/out/rehearsal-*.json)
[[ ${#records[@]} -eq 1 ]] || { cat "$work/log" >&2; fail "expected one rehearsal record, found ${#records[@]}"; }
python3 -m json.tool "${records[0]}" >/dev/null || fail "the record is not valid JSON"
grep -q 'gpu-tests .*SKIPPED (rehearsal)' "$work/out/summary.txt" || fail "gpu-tests not listed as skipped"

python3 - "${records[0]}" "$root" <<'PY'
import json, subprocess, sys
path, root = sys.argv[1:]
rec = json.load(open(path))
def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
for key in ("commit", "card", "driver", "cuda", "cudnn", "tests", "sanitizer", "train", "peer",
            "cuda_sources"):
    check(key in rec, f"no key {key}")
check(rec["rehearsal"] is True, "not marked as a rehearsal")
check(rec["card"] is None and rec["driver"] is None, "a card or driver where none was found")
check(rec["tests"] == {"passed": None, "failed": None, "skipped": None, "failures": None},
      f"tests not null: {rec['tests']}")
check(set(rec["sanitizer"]) >= {"memcheck_errors", "racecheck_hazards", "synccheck_errors"}
      and set(rec["sanitizer"].values()) == {None}, f"sanitizer not null: {rec['sanitizer']}")
check([(t["model"], t["engine"], t["seconds"], t["images_per_second"], t["test_accuracy"])
       for t in rec["train"]] ==
      [("seed-v0", "cuda-auto", None, None, None), ("seed-v1", "cuda-auto", None, None, None),
       ("seed-v1", "cuda-own", None, None, None), ("seed-v0", "cuda-fused", None, None, None),
       ("seed-v1", "cuda-fused", None, None, None),
       ("seed-v0", "cuda-fused-block", None, None, None),
       ("seed-v0", "cuda-fused-block-launch-per-step", None, None, None)], f"train: {rec['train']}")
check(len(rec["peer"]) >= 2 and all(p["seconds"] is None for p in rec["peer"])
      and {p["model"] for p in rec["peer"]} == {"seed-v0", "seed-v1"}, f"peer: {rec['peer']}")
steps = {s["name"]: s["result"] for s in rec["steps"]}
check(steps.get("gpu-tests") == "SKIPPED (rehearsal)", f"steps: {steps}")
check(steps.get("pytorch-peer") == "SKIPPED (GPU_CHECK_SKIP)", f"steps: {steps}")
git = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True, text=True)
head = git("rev-parse", "HEAD")
if head.returncode == 0:
    check(rec["commit"] == head.stdout.strip(), "commit is not HEAD")
    src = rec["cuda_sources"]
    if src["dirty"] is False:
        for p in ("cuda", "include", "tests/gpu"):
            check(src[p] == git("rev-parse", f"HEAD:{p}").stdout.strip(), f"{p} is not HEAD's")
print("gpu-check rehearsal: record", path.rsplit("/", 1)[1], "checked")
PY
