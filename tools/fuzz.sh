#!/usr/bin/env bash
# Builds the libFuzzer targets of the input parsers with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer; tests/fuzz/README.md) and runs each for a bounded time, from the
# seed corpus in tests/fuzz/corpus/TARGET/. Exits 1 when a target finds a crash, a leak, a
# timeout or an out-of-memory; the input that did it is kept in BUILD_DIR/findings/ and the
# command that replays it is printed. Targets run side by side, as many as there are cores.
#
# usage: tools/fuzz.sh [--seconds S] [--build-dir DIR] [TARGET...]
#        tools/fuzz.sh --available
#   TARGET         spec, idx, checkpoint (the default set) or cli (the command line's
#                  parsing: built only when named, as it compiles the whole library, several
#                  minutes); all: the four
#   --seconds S    seconds each target runs (default 25)
#   --build-dir D  the build directory (default: build-fuzz in the repository; a relative
#                  path is taken from the current directory)
#   --available    exit 0 when clang here can build a libFuzzer target, 1 when not
#   -h, --help     this text
# Needs clang and its libFuzzer runtime (Debian: clang, libclang-rt-dev; tools/setup.sh --fuzz
# installs them), CMake and Ninja. The corpus each run grows is kept in BUILD_DIR/corpus/.
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
usage_line="usage: tools/fuzz.sh [--seconds S] [--build-dir DIR] [TARGET...] | --available; --help"
bad() { echo "fuzz: $* ($usage_line)" >&2; exit 2; }

seconds=25 build_dir="" available=0 targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) [[ $# -ge 2 ]] || bad "--seconds needs a value"; seconds="$2"; shift ;;
    --seconds=*) seconds="${1#--seconds=}" ;;
    --build-dir) [[ $# -ge 2 ]] || bad "--build-dir needs a value"; build_dir="$2"; shift ;;
    --build-dir=*) build_dir="${1#--build-dir=}" ;;
    --available) available=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) bad "unknown option '$1'" ;;
    spec | idx | checkpoint | cli) targets+=("$1") ;;
    all) targets+=(spec idx checkpoint cli) ;;
    *) bad "unknown target '$1' (known: spec, idx, checkpoint, cli, all)" ;;
  esac
  shift
done
[[ "$seconds" =~ ^[1-9][0-9]{0,5}$ ]] || bad "--seconds '$seconds': expected whole seconds, 1 or more"
((${#targets[@]})) || targets=(spec idx checkpoint)
mapfile -t targets < <(printf '%s\n' "${targets[@]}" | awk '!seen[$0]++')
if [[ -z "$build_dir" ]]; then
  build_dir="$root/build-fuzz"
elif [[ "$build_dir" != /* ]]; then
  build_dir="$here/$build_dir"
fi

# Whether clang links a fuzz target here (clang without libclang-rt-dev cannot).
probe() {
  command -v clang++ >/dev/null || return 1
  local dir ok=0
  dir="$(mktemp -d "${TMPDIR:-/tmp}/splitconv-fuzz-probe.XXXXXX")"
  printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
     'extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }' >"$dir/p.cpp"
  clang++ -fsanitize=fuzzer,address,undefined "$dir/p.cpp" -o "$dir/p" >/dev/null 2>&1 || ok=1
  rm -rf "$dir"
  return $ok
}
if ((available)); then
  probe
  exit $?
fi
if ! probe; then
  echo "fuzz: clang++ cannot build a libFuzzer target here (Debian: clang and libclang-rt-dev;" \
       "tools/setup.sh --fuzz installs them)" >&2
  exit 1
fi

jobs=$(nproc 2>/dev/null || echo 2)
started=$SECONDS
echo "fuzz: building ${targets[*]} in $build_dir" >&2
mkdir -p "$build_dir/findings" "$build_dir/logs"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DSPLITCONV_FUZZ=ON -DSPLITCONV_NATIVE=OFF >"$build_dir/logs/configure.log" 2>&1 ||
  { cat "$build_dir/logs/configure.log" >&2; echo "fuzz: configuring $build_dir failed" >&2; exit 1; }
cmake --build "$build_dir" -j "$jobs" --target "${targets[@]/#/fuzz_}" >&2
echo "fuzz: built in $((SECONDS - started)) s; each target runs ${seconds} s" >&2

run_one() {
  local t="$1" work="$build_dir/corpus/$1" rc=0
  mkdir -p "$work"
  rm -f "$build_dir/findings/$t-"*
  # New inputs go to the first directory, the work corpus; the seeds are only read.
  "$build_dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build_dir/findings/$t-" \
    "$work" "$root/tests/fuzz/corpus/$t" >"$build_dir/logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$build_dir/logs/$t.rc"
}
running=0
for t in "${targets[@]}"; do
  rm -f "$build_dir/logs/$t.rc"
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait
failed=()
for t in "${targets[@]}"; do
  [[ "$(cat "$build_dir/logs/$t.rc" 2>/dev/null)" == 0 ]] || failed+=("$t")
done

stat() { grep -m1 "^stat::$2:" "$build_dir/logs/$1.log" | awk '{print $2}'; }
printf 'fuzz: %-11s %12s %10s %8s  %s\n' target executions "exec/s" corpus result
for t in "${targets[@]}"; do
  result=ok
  [[ " ${failed[*]} " == *" $t "* ]] && result="FINDING (log: $build_dir/logs/$t.log)"
  printf 'fuzz: %-11s %12s %10s %8s  %s\n' "$t" "$(stat "$t" number_of_executed_units || true)" \
    "$(stat "$t" average_exec_per_sec || true)" \
    "$(find "$build_dir/corpus/$t" -type f | wc -l)" "$result"
done
if ((${#failed[@]})); then
  for t in "${failed[@]}"; do
    grep -m3 -E 'ERROR|fuzz finding|SUMMARY|Test unit written' "$build_dir/logs/$t.log" | sed "s/^/fuzz: $t: /" >&2 || true
    for f in "$build_dir/findings/$t-"*; do
      [[ -e "$f" ]] && echo "fuzz: replay: $build_dir/tests/fuzz/fuzz_$t $f" >&2
    done
  done
  echo "fuzz: findings in ${failed[*]}: each becomes a regression test (tests/fuzz/README.md)" >&2
  exit 1
fi
echo "fuzz: no findings ($((SECONDS - started)) s in all)" >&2
