#!/usr/bin/env bash
# tools/gpu-status.sh against a small git repository made here: no record, a record whose
# commit is in the history (committed and uncommitted changes since it, a failed test), a
# run on uncommitted code, a commit the repository lacks, rehearsal records, bad arguments.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
status="$root/tools/gpu-status.sh"
record_py="$root/tools/gpu_record.py"
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-status-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
repo="$work/repo"

fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # OUTPUT TEXT: TEXT is a line or part of one in OUTPUT
  grep -qF -- "$2" <<<"$1" || { printf 'FAIL: expected "%s" in:\n%s\n' "$2" "$1" >&2; exit 1; }
}
reject() {  # OUTPUT TEXT: TEXT is not in OUTPUT
  if grep -qF -- "$2" <<<"$1"; then printf 'FAIL: did not expect "%s" in:\n%s\n' "$2" "$1" >&2; exit 1; fi
}
g() { git -C "$repo" "$@"; }
commit_all() { g add -A && g commit -q -m "$1"; }

# record FILE [rehearsal]: a record of a run on the tree as it is now, as gpu-check writes it
# (sources hashed by gpu_record.py), with one failed GPU test and clean sanitizers.
record() {
  local file="$1" rehearsal="${2:-false}"
  python3 - "$repo" "$record_py" "$repo/docs/gpu/$file" "$rehearsal" <<'PY'
import importlib.util, json, sys
repo, record_py, path, rehearsal = sys.argv[1:]
spec = importlib.util.spec_from_file_location("gpu_record", record_py)
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)
head = gr.rev_parse(repo, "HEAD")
rec = {"format": gr.FORMAT, "date": path.rsplit("/", 1)[1][:10] + "T12:00:00Z",
       "commit": head, "rehearsal": rehearsal == "true", "card": "NVIDIA H200",
       "cuda_sources": gr.cuda_sources(repo),
       "tests": {"passed": 120, "failed": 1, "skipped": 0,
                 "failures": ["Seed/SeedModels.FiftyStepsMatchCpu/seed_v1"]},
       "sanitizer": {"memcheck_errors": 0, "racecheck_hazards": 0, "synccheck_errors": 0}}
json.dump(rec, open(path, "w"), indent=2)
PY
}

# The repository: GPU code, host code, and docs/gpu for the records.
git init -q "$repo"
g config user.email test@example.com
g config user.name test
mkdir -p "$repo"/{cuda,include/splitconv,tests/gpu,host/bench,docs/gpu}
echo '__global__ void k() {}' >"$repo/cuda/conv.cu"
echo '__global__ void p() {}' >"$repo/cuda/pool.cu"
echo '#pragma once' >"$repo/include/splitconv/plan.h"
echo 'TEST(A, B) {}' >"$repo/tests/gpu/ops_test.cpp"
echo 'int train() { return 0; }' >"$repo/host/train.cpp"
echo 'int factory() { return 0; }' >"$repo/host/backend_factory.cpp"
mkdir -p "$repo/host/fused"
echo '#pragma once' >"$repo/host/fused/block_ops.h"
echo 'int dispatch() { return 0; }' >"$repo/host/bench/dispatch.cpp"
commit_all "first"

# No record: says so.
out="$("$status" --repo "$repo")"
expect "$out" "no GPU run recorded"

# A rehearsal record is no GPU run.
record rehearsal-2025-01-01-aaaaaaaaaaaa.json true
out="$("$status" --repo "$repo")"
expect "$out" "no GPU run recorded"

# A record of the first commit; then a commit that changes cuda/conv.cu and host/train.cpp.
record 2025-01-02-first.json
commit_all "record the run"
out="$("$status" --repo "$repo")"
expect "$out" "last GPU run: docs/gpu/2025-01-02-first.json"
expect "$out" "Seed/SeedModels.FiftyStepsMatchCpu/seed_v1"
expect "$out" "(no change)"
first="$(g rev-parse HEAD~1)"
echo '__global__ void k() { /* faster */ }' >"$repo/cuda/conv.cu"
echo 'int train() { return 1; }' >"$repo/host/train.cpp"
echo '// one phase fewer' >>"$repo/host/fused/block_ops.h"
commit_all "faster conv"
out="$("$status" --repo "$repo")"
expect "$out" "git diff --stat ${first:0:12}..HEAD -- cuda include tests/gpu host/fused"
expect "$out" "cuda/conv.cu"
expect "$out" "host/fused/block_ops.h"
expect "$out" "2 files changed"
reject "$out" "cuda/pool.cu"
reject "$out" "(no change)"
expect "$out" "linked into the CUDA build"
expect "$out" "host/train.cpp"
expect "$out" "last clean GPU run (0 failed tests, sanitizers clean): none recorded"

# Uncommitted GPU code now is named too.
echo 'TEST(A, C) {}' >>"$repo/tests/gpu/ops_test.cpp"
out="$("$status" --repo "$repo")"
expect "$out" "uncommitted now"
expect "$out" "tests/gpu/ops_test.cpp"

# A later run on that uncommitted code: the diff is taken from its recorded trees.
record 2025-01-03-dirty.json
g add docs/gpu && g commit -q -m "record the dirty run"
out="$("$status" --repo "$repo")"
expect "$out" "last GPU run: docs/gpu/2025-01-03-dirty.json"
expect "$out" "uncommitted changes on"
expect "$out" "tests/gpu: changed (the recorded version is not in this repository)"
expect "$out" "cuda: unchanged"
g checkout -q -- tests/gpu
g add -A && g commit -q -m "back" --allow-empty

# A run whose commit this repository lacks, on sources equal to HEAD's: nothing changed.
python3 - "$repo/docs/gpu/2025-01-04-elsewhere.json" "$repo" "$record_py" <<'PY'
import importlib.util, json, sys
path, repo, record_py = sys.argv[1:]
spec = importlib.util.spec_from_file_location("gpu_record", record_py)
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)
src = gr.cuda_sources(repo)
src["dirty"] = None  # a tree without .git: unknown
json.dump({"date": "2025-01-04T00:00:00Z", "commit": "0" * 40, "cuda_sources": src,
           "tests": {"passed": 121, "failed": 0, "skipped": 0, "failures": []},
           "sanitizer": {"memcheck_errors": 0, "racecheck_hazards": 0, "synccheck_errors": 0}},
          open(path, "w"))
PY
out="$("$status" --repo "$repo")"
expect "$out" "which this repository lacks"
expect "$out" "cuda: unchanged"
expect "$out" "include: unchanged"
expect "$out" "failed GPU tests in it: none"
expect "$out" "last clean GPU run (0 failed tests, sanitizers clean): 2025-01-04"

# A record that is not JSON is named and left out.
echo '{ not json' >"$repo/docs/gpu/2025-01-05-broken.json"
out="$("$status" --repo "$repo")"
expect "$out" "2025-01-05-broken.json is not a record"
expect "$out" "last GPU run: docs/gpu/2025-01-04-elsewhere.json"

# A run recorded from a tree without .git at a commit this repository has (dirty unknown): its
# recorded ids equal that commit's, so the changes are that commit's diff to HEAD.
python3 - "$repo/docs/gpu/2025-01-06-nogit.json" "$repo" "$record_py" <<'PY'
import importlib.util, json, sys
path, repo, record_py = sys.argv[1:]
spec = importlib.util.spec_from_file_location("gpu_record", record_py)
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)
src = gr.cuda_sources(repo)
src["dirty"] = None
json.dump({"date": "2025-01-06T00:00:00Z", "commit": gr.rev_parse(repo, "HEAD"),
           "cuda_sources": src, "tests": {"passed": None, "failed": None, "skipped": None,
                                          "failures": None}}, open(path, "w"))
PY
nogit="$(g rev-parse HEAD)"
echo '__global__ void p() { /* tiled */ }' >"$repo/cuda/pool.cu"
commit_all "tiled pool"
out="$("$status" --repo "$repo")"
expect "$out" "git diff --stat ${nogit:0:12}..HEAD"
expect "$out" "cuda/pool.cu"
reject "$out" "cuda/conv.cu"
expect "$out" "its GPU tests did not run"

# Bad arguments: one line on stderr, exit 2.
for args in "--bogus" "extra" "--records"; do
  rc=0
  err="$("$status" --repo "$repo" $args 2>&1 >/dev/null)" || rc=$?
  [[ $rc -eq 2 ]] || fail "gpu-status $args: exit $rc, expected 2"
  [[ "$(wc -l <<<"$err")" -eq 1 && -n "$err" ]] || fail "gpu-status $args: expected one line, got: $err"
done
"$status" --help | grep -q "usage: tools/gpu-status.sh" || fail "--help prints no usage"
echo "gpu-status: all checks passed"
