#!/usr/bin/env bash
# tools/gpu-check.sh's GPU path, end to end, on a machine without a GPU: nvidia-smi, nvcc,
# cmake, ctest, compute-sanitizer and the built binaries are stand-ins made here that answer as
# the real ones do (ctest writes its JUnit XML with one failed test, splitconv writes its JSON
# reports, the sanitizer its summaries). Checks that every step runs and that the record holds
# what the stand-ins reported: card, driver, versions, test counts and the failure, sanitizer
# counts, training times, the deterministic comparison.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-stubbed-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
bin="$work/bin"
mkdir -p "$bin"
fail() { echo "FAIL: $*" >&2; exit 1; }

stub() {  # NAME BODY: an executable NAME in $bin running BODY under bash
  printf '#!/usr/bin/env bash\n%s\n' "$2" >"$bin/$1"
  chmod +x "$bin/$1"
}
# The value after OPTION among the arguments ("" when absent).
arg_of='arg_of() { local want="$1"; shift; while (($#)); do [[ "$1" == "$want" ]] && { echo "$2"; return; }; shift; done; }'

stub nvidia-smi 'case "$*" in
  -L) echo "GPU 0: NVIDIA Stand-in 80GB (UUID: GPU-0)" ;;
  *name,driver_version,compute_cap*) echo "NVIDIA Stand-in 80GB, 999.1.2, 9.0" ;;
  *compute_cap*) echo "9.0" ;;
  *) echo "stand-in nvidia-smi" ;;
esac'
stub nvcc 'echo "Cuda compilation tools, release 13.0, V13.0.0"'
# splitconv and the test binaries are written by the stand-in build.
stub cmake "$arg_of"'
if [[ "$1" == --build ]]; then
  b="$2"
  mkdir -p "$b/tests"
  cat >"$b/splitconv" <<'"'"'SC'"'"'
#!/usr/bin/env bash
arg_of() { local want="$1"; shift; while (($#)); do [[ "$1" == "$want" ]] && { echo "$2"; return; }; shift; done; }
json="$(arg_of --json "$@")"; save="$(arg_of --save "$@")"
case "$1" in
  devices) [[ -n "$json" ]] && echo "{\"cuda_backend\": true, \"devices\": [{\"index\": 0, \"name\": \"NVIDIA Stand-in 80GB\", \"compute_capability\": \"9.0\"}], \"runtime_version\": \"13.0\", \"cudnn_version\": \"9.19.0\", \"cublas_version\": \"13.1.0\", \"driver_version\": \"13.0\"}" >"$json"
           echo "cuda:0  NVIDIA Stand-in 80GB  compute 9.0" ;;
  train) [[ -n "$json" ]] && echo "{\"train_seconds\": 2.5, \"images_per_second\": 120000.0, \"test_accuracy\": 0.989, \"epochs\": [{\"loss\": 0.1}, {\"loss\": 0.05}]}" >"$json"
         [[ -n "$save" ]] && echo "same bytes" >"$save" ;;
  *) echo "stand-in splitconv $*" ;;
esac
exit 0
SC
  printf "#!/usr/bin/env bash\necho \"[  PASSED  ] 1 test.\"\n" >"$b/tests/splitconv_gpu_tests"
  cp "$b/tests/splitconv_gpu_tests" "$b/tests/splitconv_tests"
  chmod +x "$b/splitconv" "$b/tests/splitconv_gpu_tests" "$b/tests/splitconv_tests"
fi
echo "stand-in cmake $*"'
stub ctest "$arg_of"'
junit="$(arg_of --output-junit "$@")"
cat >"$junit" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="stand-in" tests="3" failures="1" disabled="0" skipped="1">
  <testcase name="GpuOps.Relu" classname="GpuOps.Relu" status="run"/>
  <testcase name="Seed/SeedModels.FiftyStepsMatchCpu/seed_v1" classname="Seed/SeedModels.FiftyStepsMatchCpu/seed_v1" status="fail"><failure message=""/></testcase>
  <testcase name="BenchCuda.Conv" classname="BenchCuda.Conv" status="notrun"><skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/></testcase>
</testsuite>
XML
echo "67% tests passed, 1 tests failed out of 3"
exit 8'
stub compute-sanitizer 'case "$*" in
  *racecheck*) echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)" ;;
  *synccheck*) echo "========= ERROR SUMMARY: 2 errors"; exit 3 ;;
  *) echo "========= ERROR SUMMARY: 0 errors" ;;
esac'

rc=0
PATH="$bin:$PATH" GPU_CHECK_BUILD="$work/build" GPU_CHECK_SKIP="pytorch-peer" \
  GPU_CHECK_DATA="$work/data" "$root/tools/gpu-check.sh" "$work/out" >"$work/log" 2>&1 || rc=$?
# A failed GPU test and synccheck errors: the run reports failure.
[[ $rc -eq 1 ]] || { cat "$work/log" >&2; fail "gpu-check exited $rc, expected 1"; }
shopt -s nullglob
records=("$work"/out/20*.json)
[[ ${#records[@]} -eq 1 ]] || { cat "$work/log" >&2; fail "expected one record, found ${#records[@]}"; }
python3 -m json.tool "${records[0]}" >/dev/null || fail "the record is not valid JSON"

python3 - "${records[0]}" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))
def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
check(rec["rehearsal"] is False, "marked as a rehearsal")
check((rec["card"], rec["driver"], rec["compute_capability"]) ==
      ("NVIDIA Stand-in 80GB", "999.1.2", "9.0"), f"machine: {rec['card']}, {rec['driver']}")
check((rec["cuda"], rec["cudnn"], rec["cublas"]) == ("13.0", "9.19.0", "13.1.0"), "versions")
check(rec["tests"] == {"passed": 1, "failed": 1, "skipped": 1,
                       "failures": ["Seed/SeedModels.FiftyStepsMatchCpu/seed_v1"]},
      f"tests: {rec['tests']}")
check(rec["cpu_tests"]["failed"] == 1, f"cpu_tests: {rec['cpu_tests']}")
check(rec["sanitizer"] == {"memcheck_errors": 0, "racecheck_hazards": 0, "synccheck_errors": 2,
                           "memcheck_backend_errors": 0}, f"sanitizer: {rec['sanitizer']}")
check([(t["model"], t["engine"], t["seconds"], t["epochs"]) for t in rec["train"]] ==
      [("seed-v0", "cuda-auto", 2.5, 2), ("seed-v1", "cuda-auto", 2.5, 2),
       ("seed-v1", "cuda-own", 2.5, 2), ("seed-v0", "cuda-fused", 2.5, 2),
       ("seed-v1", "cuda-fused", 2.5, 2), ("seed-v0", "cuda-fused-block", 2.5, 2),
       ("seed-v0", "cuda-fused-block-launch-per-step", 2.5, 2)],
      f"train: {rec['train']}")
check(rec["deterministic"] == {"seed-v0": True, "seed-v1": True}, f"{rec['deterministic']}")
check(all(p["seconds"] is None for p in rec["peer"]) and len(rec["peer"]) == 10,
      f"peer: {rec['peer']}")
steps = {s["name"]: s["result"] for s in rec["steps"]}
for name in ("configure", "build", "devices", "train-v0", "train-v1", "train-fused-v0",
             "train-fused-v1", "train-fused-v0-block", "train-v1-own",
             "train-deterministic", "bench-kernels", "memcheck", "racecheck",
             "memcheck-backend", "bench-conv", "bench-sweep"):
    check(steps.get(name) == "ok", f"step {name}: {steps.get(name)}")
check(steps["gpu-tests"] == "FAILED (exit 8)", f"gpu-tests: {steps['gpu-tests']}")
check(steps["synccheck"] == "FAILED (exit 3)", f"synccheck: {steps['synccheck']}")
check(steps["pytorch-peer"] == "SKIPPED (GPU_CHECK_SKIP)", "peer not skipped")
print("gpu-check with stand-ins: record", sys.argv[1].rsplit("/", 1)[1], "checked")
PY
grep -q 'Seed/SeedModels.FiftyStepsMatchCpu/seed_v1' "$work/out/summary.txt" || fail "summary lacks the failed test"
grep -q '^gpu-tests .*1 passed, 1 failed, 1 skipped' "$work/out/summary.txt" || fail "summary lacks the test counts"
