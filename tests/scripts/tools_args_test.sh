#!/usr/bin/env bash
# The scripts under tools/ and their arguments: each refuses an unknown argument with one
# line on stderr that names it, exit 2, before doing anything; each answers --help with its
# usage, exit 0; relative paths are taken from the current directory, not the repository.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tools-args-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# refused EXPECTED_RC WORD COMMAND...: COMMAND exits EXPECTED_RC with one line on stderr that
# contains WORD, and nothing on stdout.
refused() {
  local want="$1" word="$2" rc=0
  shift 2
  "$@" >"$work/out" 2>"$work/err" </dev/null || rc=$?
  local lines
  lines=$(wc -l <"$work/err")
  if [[ $rc -ne $want ]]; then
    fail "$*: exit $rc, expected $want; stderr: $(head -c 300 "$work/err")"
  elif [[ $lines -ne 1 ]]; then
    fail "$*: $lines lines on stderr, expected one: $(head -c 300 "$work/err")"
  elif ! grep -qF -- "$word" "$work/err"; then
    fail "$*: the message does not name '$word': $(cat "$work/err")"
  elif [[ -s "$work/out" ]]; then
    fail "$*: wrote to stdout: $(head -c 200 "$work/out")"
  fi
}

# helps COMMAND...: exit 0 and a usage text on stdout.
helps() {
  local rc=0
  "$@" >"$work/out" 2>"$work/err" </dev/null || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail "$*: exit $rc; stderr: $(head -c 300 "$work/err")"
  elif ! grep -qi 'usage' "$work/out"; then
    fail "$*: no usage on stdout: $(head -c 300 "$work/out")"
  fi
}

cd "$work"
t="$root/tools"
# Shell scripts: the unknown argument first, so a script that ignored it would go on to its
# work (and the check that nothing reached stdout would catch most of that).
for s in setup.sh test.sh fetch-data.sh fuzz.sh gpu-check.sh gpu-status.sh profile.sh \
         make-carry.sh carry-cmake-flags.sh; do
  refused 2 --bogus "$t/$s" --bogus
  helps "$t/$s" --help
done
refused 2 --GPU "$t/test.sh" --GPU
refused 2 --fuzz "$t/test.sh" --gpu --fuzz
refused 2 --optional "$t/setup.sh" --build-only --optional
refused 2 "'b'" "$t/setup.sh" a b
refused 2 --dataset "$t/fetch-data.sh" --dataset
refused 2 "'emnist'" "$t/fetch-data.sh" --dataset emnist
refused 2 "'speck'" "$t/fuzz.sh" speck
refused 2 "'0'" "$t/fuzz.sh" --seconds 0
refused 2 "'bogus'" "$t/svd-experiment.sh" bogus
refused 2 "got 2" "$t/svd-experiment.sh" seed wide5
helps "$t/svd-experiment.sh" --help
SEEDS="0 x" refused 2 "'x'" "$t/svd-experiment.sh" seed
refused 2 "'--bogus'" "$t/bench/cpu-vs-pytorch.sh" --bogus
refused 2 "'many'" "$t/bench/cpu-vs-pytorch.sh" v0 many
helps "$t/bench/cpu-vs-pytorch.sh" --help
refused 2 "'--bogus'" "$t/bench/conv-vs-pytorch.sh" --bogus
refused 2 "'x'" "$t/bench/conv-vs-pytorch.sh" 2 x
refused 2 "got 3" "$t/bench/conv-vs-pytorch.sh" 2 7 9
helps "$t/bench/conv-vs-pytorch.sh" --help
helps "$t/run.sh" --help
refused 2 "kind 'gpu'" "$t/profile.sh" --table gpu x.csv
refused 2 "got 3" "$t/profile.sh" a b c

# Python scripts.
refused 2 --bogus python3 "$t/plot.py" a.csv b.png --bogus
helps python3 "$t/plot.py" --help
refused 2 --bogus python3 "$t/gpu_record.py" status --bogus
refused 2 "'bogus'" python3 "$t/gpu_record.py" bogus
refused 2 --bogus python3 "$t/peer/check_checkpoint.py" ck.safetensors images.idx --bogus
helps python3 "$t/peer/check_checkpoint.py" --help
refused 2 --bogus python3 "$t/svd-summary.py" --bogus
refused 2 "no seed's reports" python3 "$t/svd-summary.py" "$work/empty"
helps python3 "$t/svd-summary.py" --help
if python3 -c 'import torch' 2>/dev/null; then
  refused 2 --bogus python3 "$t/peer/pytorch_seed.py" --bogus
else  # without PyTorch it says so first, and which package brings it
  refused 3 python3-torch python3 "$t/peer/pytorch_seed.py" --bogus
fi
helps python3 "$t/peer/pytorch_seed.py" --help
refused 2 --bogus python3 "$t/peer/pytorch_conv.py" --bogus
refused 2 "'5'" python3 "$t/peer/pytorch_conv.py" --size 5
helps python3 "$t/peer/pytorch_conv.py" --help

# Relative paths are the caller's: run from $work, they must name files in $work.
echo "input 4x4x1" >m.net
rc=0
SPLITCONV=./no-binary "$t/profile.sh" m.net out >"$work/log" 2>&1 || rc=$?
grep -qF "no binary $work/./no-binary" "$work/log" ||
  fail "profile.sh: SPLITCONV=./no-binary not taken from the current directory (exit $rc): $(cat "$work/log")"
rc=0
"$t/profile.sh" no-model.net >"$work/log" 2>&1 || rc=$?
[[ $rc -eq 2 ]] && grep -qF "no model spec $work/no-model.net" "$work/log" ||
  fail "profile.sh: MODEL not taken from the current directory (exit $rc): $(cat "$work/log")"

# svd-experiment.sh with a stand-in binary that records its arguments: BIN, OUT and the data
# directory are the caller's, the model specs the repository's.
cat >fake-splitconv <<'EOF'
#!/usr/bin/env bash
echo "$SPLITCONV_DATA :: $*" >>"$(dirname "$0")/calls"
EOF
chmod +x fake-splitconv
rc=0
BIN=./fake-splitconv OUT=svd SPLITCONV_DATA=mydata "$t/svd-experiment.sh" seed >"$work/log" 2>&1 || rc=$?
if [[ $rc -ne 0 || ! -s calls ]]; then
  fail "svd-experiment.sh with a relative BIN: exit $rc, no calls: $(tail -3 "$work/log")"
else
  first="$(head -n1 calls)"
  [[ -d "$work/svd" ]] || fail "svd-experiment.sh: OUT=svd not made in the current directory"
  [[ "$first" == "$work/mydata :: train models/seed-v0.net "*"--save $work/svd/v0.safetensors"* ]] ||
    fail "svd-experiment.sh: relative OUT or SPLITCONV_DATA not the caller's: $first"
fi

if ((failures)); then
  echo "$failures failures" >&2
  exit 1
fi
echo "tools' arguments: ok"
