#!/usr/bin/env bash
# One run on a GPU machine (CUDA toolkit, CMake, ninja, PyTorch; no Debian packages, no
# network): build with the CUDA backend against .carry/, `splitconv devices`, compute-sanitizer
# first (memcheck, racecheck, synccheck on the small op tests and the fused engine), the GPU
# tests, train seed-v0 and seed-v1 on MNIST for 5 epochs with the graph engine, the fused
# engine and the own kernels, the PyTorch peer, the CPU tests, and last the layer benchmarks (bench-conv, bench-sweep:
# ~4.5 minutes more; give GPU_CHECK_BUDGET room, or GPU_CHECK_SKIP the rest to run them alone).
# Every log goes to OUTDIR; a summary table comes last, and the record of the run:
# OUTDIR/DATE-COMMIT.json (tools/gpu_record.py; keys in docs/design.md, JSON reports), to be
# committed as docs/gpu/DATE-COMMIT.json. tools/gpu-status.sh reads those records. The logs
# and reports an earlier run left in OUTDIR are removed first.
#
# usage: tools/gpu-check.sh [--rehearse] OUTDIR
#   --rehearse         on a machine without a GPU: no build and no GPU step (each listed as
#                      skipped), the PyTorch peer for a few steps on the CPU, the summary and
#                      OUTDIR/rehearsal-DATE-COMMIT.json with nulls for what did not run; exits 0
#                      when no step failed and the record was written
#   GPU_CHECK_BUDGET   seconds for the whole run (default 450); a step gets what is left, and a
#                      step that would start with under 15 s left is skipped and says so
#   GPU_CHECK_JOBS     build and test parallelism (default: the number of cores)
#   GPU_CHECK_BUILD    the build directory (default: build-gpu in the repository)
#   GPU_CHECK_DATA     the data directory (default: .carry/data, else data, in the repository;
#                      .carry/ is what tools/make-carry.sh builds for a GPU machine without
#                      Debian's packages or a network: the build's dependencies and MNIST)
#   Relative paths (OUTDIR, GPU_CHECK_BUILD, GPU_CHECK_DATA) are taken from the current
#   directory.
#   GPU_CHECK_SKIP     step names to leave out, e.g. "memcheck racecheck" (a rerun that needs
#                      only some steps); they are listed as skipped
#   GPU_CHECK_PROFILE  1: also profile seed-v0 and seed-v1 training with tools/profile.sh
#   GPU_CHECK_PEER_MODES  the PyTorch peer's modes, in order (default: graph,
#                      compile-reduce-overhead, compile-max-autotune, graph+cl, eager)
#   GPU_CHECK_COMMIT   the commit checked out, for the record when the tree has no .git
#
# Every step has its own timeout and the script continues when one fails; it exits 1 when any
# step failed or was skipped, else 0.
set -uo pipefail

usage() { sed -n '/^# usage:/,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
rehearse=0
outdir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rehearse) rehearse=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu-check: unknown option $1 (usage: tools/gpu-check.sh [--rehearse] OUTDIR)" >&2; exit 2 ;;
    *) [[ -z "$outdir" ]] || { echo "gpu-check: one OUTDIR only (usage: tools/gpu-check.sh [--rehearse] OUTDIR)" >&2; exit 2; }
       outdir="$1" ;;
  esac
  shift
done
[[ -n "$outdir" ]] || { echo "gpu-check: no OUTDIR (usage: tools/gpu-check.sh [--rehearse] OUTDIR)" >&2; exit 2; }
# Relative paths (OUTDIR, GPU_CHECK_BUILD, GPU_CHECK_DATA) are taken from the current directory.
here="$PWD"
abs() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$here/$1"; fi; }
mkdir -p "$outdir" || exit 1
out="$(cd "$outdir" && pwd)"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
budget="${GPU_CHECK_BUDGET:-450}"
jobs="${GPU_CHECK_JOBS:-$(nproc 2>/dev/null || echo 8)}"
build="$(abs "${GPU_CHECK_BUILD:-$root/build-gpu}")"
data="$(abs "${GPU_CHECK_DATA:-$root/.carry/data}")"
[[ -z "${GPU_CHECK_DATA:-}" && ! -d "$data/mnist" && -d "$root/data/mnist" ]] && data="$root/data"
peer_models=v0,v1
peer_modes="${GPU_CHECK_PEER_MODES:-graph,compile-reduce-overhead,compile-max-autotune,graph+cl,eager}"
started=$SECONDS
started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# What a record is read from: nothing of an earlier run in the same OUTDIR may be taken for
# this one's.
rm -f "$out"/steps.tsv "$out"/nvidia-smi.csv "$out"/devices.json "$out"/gpu-tests.xml \
  "$out"/cpu-tests.xml "$out"/train-*.json "$out"/pytorch-peer.json "$out"/*.log

declare -a step_names=()
declare -A step_result=() step_seconds=()

log() { printf '[gpu-check %3ds] %s\n' "$((SECONDS - started))" "$*"; }

# finish NAME RESULT SECONDS: the step's outcome, in the table and in OUTDIR/steps.tsv.
finish() {
  step_result[$1]="$2"
  step_seconds[$1]="$3"
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$out/steps.tsv"
}

# unavailable NAME WHY: a step that cannot run here, listed as skipped (in a rehearsal, as
# skipped for the rehearsal).
unavailable() {
  step_names+=("$1")
  if ((rehearse)); then
    finish "$1" "SKIPPED (rehearsal)" 0
  else
    finish "$1" "SKIPPED ($2)" 0
  fi
}
not_built() { unavailable "$1" "$2 not built"; }  # NAME WHAT

# step NAME LIMIT CMD...: runs CMD with stdout and stderr in OUTDIR/NAME.log, for at most LIMIT
# seconds and never past the budget.
step() {
  local name="$1" limit="$2"
  shift 2
  step_names+=("$name")
  if [[ " ${GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    finish "$name" "SKIPPED (GPU_CHECK_SKIP)" 0
    log "$name: skipped (GPU_CHECK_SKIP)"
    return 0
  fi
  if ((rehearse)) && [[ " $rehearsal_steps " != *" $name "* ]]; then
    finish "$name" "SKIPPED (rehearsal)" 0
    log "$name: skipped (rehearsal)"
    return 1
  fi
  local left=$((budget - (SECONDS - started)))
  if ((left < 15)); then
    finish "$name" "SKIPPED (out of time)" 0
    log "$name: skipped, ${left}s left of the budget"
    return 1
  fi
  ((limit > left - 5)) && limit=$((left - 5))
  log "$name: starting (limit ${limit}s)"
  local t0=$SECONDS rc=0
  timeout -k 10 "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
  if ((rc == 0)); then
    finish "$name" ok $((SECONDS - t0))
  elif ((rc == 124 || rc == 137)); then
    finish "$name" "TIMEOUT after ${limit}s" $((SECONDS - t0))
  else
    finish "$name" "FAILED (exit $rc)" $((SECONDS - t0))
  fi
  log "$name: ${step_result[$name]} in ${step_seconds[$name]}s (log: $out/$name.log)"
  return "$rc"
}

# The steps a rehearsal runs (every other step is listed as skipped).
rehearsal_steps="pytorch-peer"
((rehearse)) && log "rehearsal: no build and no GPU step; the peer on the CPU; the record"

# --- the machine ---------------------------------------------------------------------------
{
  echo "== nvidia-smi -L"; nvidia-smi -L
  echo "== nvidia-smi"; nvidia-smi
  echo "== nvcc"; command -v nvcc; nvcc --version
  echo "== cmake"; cmake --version
  echo "== ninja"; ninja --version
  echo "== python3"; python3 --version
  echo "== compiler"; c++ --version
} >"$out/machine.log" 2>&1
nvidia-smi -L 2>&1 || log "nvidia-smi -L failed"
nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader \
  >"$out/nvidia-smi.csv" 2>/dev/null || rm -f "$out/nvidia-smi.csv"

cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')"
if [[ ! "$cap" =~ ^[0-9]+$ ]]; then
  log "could not read the compute capability ('$cap'); building for sm_90"
  cap=90
fi
log "CUDA architecture: $cap"

nvcc_bin="$(command -v nvcc || true)"
[[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
if [[ -n "$nvcc_bin" ]]; then
  PATH="$(dirname "$nvcc_bin"):$PATH"
  export PATH
fi

# --- cuDNN: the toolkit's, the system's, or the PyTorch wheel's (nvidia-cudnn-*) ---------------
cudnn_inc="" cudnn_lib=""
find_cudnn_in() {  # INCLUDE_DIR LIB_DIR...: sets cudnn_inc and cudnn_lib on the first match
  local inc="$1"
  shift
  [[ -f "$inc/cudnn.h" ]] || return 1
  local d
  for d in "$@"; do
    if compgen -G "$d/libcudnn.so*" >/dev/null; then
      cudnn_inc="$inc" cudnn_lib="$d"
      return 0
    fi
  done
  return 1
}
cuda_home="$(dirname "$(dirname "${nvcc_bin:-/usr/local/cuda/bin/nvcc}")")"
wheel_dir="$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
{
  echo "toolkit: $cuda_home"
  echo "python nvidia.cudnn: ${wheel_dir:-not importable}"
  for d in "$cuda_home/include" /usr/include "$cuda_home"/lib* "$cuda_home"/targets/*/lib \
    /usr/lib/x86_64-linux-gnu ${wheel_dir:+"$wheel_dir"/include "$wheel_dir"/lib}; do
    ls -d "$d"/cudnn*.h "$d"/libcudnn.so* 2>/dev/null
  done
} >"$out/cudnn-probe.log" 2>&1
find_cudnn_in "$cuda_home/include" "$cuda_home/lib64" "$cuda_home/lib" "$cuda_home"/targets/*/lib ||
  find_cudnn_in /usr/include /usr/lib/x86_64-linux-gnu /usr/lib64 ||
  { [[ -n "$wheel_dir" ]] && find_cudnn_in "$wheel_dir/include" "$wheel_dir/lib"; }
if [[ -z "$cudnn_lib" ]]; then
  log "cuDNN not found (see $out/cudnn-probe.log); the CUDA build will fail"
else
  cudnn_so="$cudnn_lib/libcudnn.so"
  if [[ ! -e "$cudnn_so" ]] && ((!rehearse)); then
    # The wheel ships libcudnn.so.9 only: link against a libcudnn.so of our own that points at it.
    link_dir="$build/cudnn-link"
    mkdir -p "$link_dir"
    real="$(find "$cudnn_lib" -maxdepth 1 -name 'libcudnn.so.*' | sort -V | head -n1)"
    ln -sf "$real" "$link_dir/libcudnn.so"
    # Beside it the sub-libraries, so the build's run path finds them too (gtest discovery runs
    # the test binary while building).
    find "$cudnn_lib" -maxdepth 1 -name 'libcudnn*.so.*' -exec ln -sf {} "$link_dir/" \;
    cudnn_so="$link_dir/libcudnn.so"
  fi
  # cuDNN 9 loads its sub-libraries (libcudnn_cnn.so.9, ...) at run time, by name.
  export LD_LIBRARY_PATH="$cudnn_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  CUDNN_ROOT="$(dirname "$cudnn_inc")"
  export CUDNN_ROOT
  version="$(grep -hE '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$cudnn_inc"/cudnn_version*.h 2>/dev/null |
    awk '{print $3}' | head -n3 | paste -sd.)"
  log "cuDNN ${version:-?}: headers $cudnn_inc, library $cudnn_so (loaded from $cudnn_lib)"
  echo "chosen: include $cudnn_inc, library $cudnn_so, LD_LIBRARY_PATH $LD_LIBRARY_PATH" \
    >>"$out/cudnn-probe.log"
fi

# --- configure and build ---------------------------------------------------------------------
carry_flags=()
if ((rehearse)); then
  :  # nothing is configured
elif [[ -x tools/carry-cmake-flags.sh ]] && flags="$(tools/carry-cmake-flags.sh "$root/.carry")"; then
  read -r -a carry_flags <<<"$flags"
elif [[ -d "$root/.carry/sysroot/usr" ]]; then
  carry_flags=(-DCMAKE_PREFIX_PATH="$root/.carry/sysroot/usr" -DZLIB_ROOT="$root/.carry/sysroot/usr")
fi
cmake_args=(
  -S "$root" -B "$build" -G Ninja
  -DCMAKE_BUILD_TYPE=Release
  -DSPLITCONV_CUDA=ON
  -DCMAKE_CUDA_ARCHITECTURES="$cap"
  "${carry_flags[@]}"
  # CMake 3.25 knows no flag for CUDA C++20 with nvcc (3.26 does); harmless when it does.
  -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20
  -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20
  # The static libraries call each other (host/backend_factory.cpp in core calls the backend
  # library linked before it): let the linker rescan them.
  "-DCMAKE_CXX_LINK_EXECUTABLE=<CMAKE_CXX_COMPILER> <FLAGS> <CMAKE_CXX_LINK_FLAGS> <LINK_FLAGS> <OBJECTS> -o <TARGET> -Wl,--start-group <LINK_LIBRARIES> -Wl,--end-group"
)
[[ -n "$nvcc_bin" ]] && cmake_args+=(-DCMAKE_CUDA_COMPILER="$nvcc_bin")
[[ -n "$cudnn_lib" ]] && cmake_args+=(-DCUDNN_INCLUDE_DIR="$cudnn_inc" -DCUDNN_LIBRARY="$cudnn_so")

# -k 0: build all that compiles, so one broken file elsewhere leaves the rest to test.
configured=0
step configure 90 cmake "${cmake_args[@]}" && configured=1
if ((configured)); then
  step build 300 cmake --build "$build" -j "$jobs" -- -k 0
else
  unavailable build "not configured"
fi
bin="$build/splitconv"
gpu_tests="$build/tests/splitconv_gpu_tests"
cpu_tests="$build/tests/splitconv_tests"
# A rehearsal uses no binary, even where an earlier build left one.
((rehearse)) && bin=/nonexistent gpu_tests=/nonexistent cpu_tests=/nonexistent

# --- tests, training, sanitizers -----------------------------------------------------------
if [[ -x "$bin" ]]; then
  step devices 30 "$bin" devices --json "$out/devices.json"
else
  not_built devices splitconv
fi

sanitizer="$(command -v compute-sanitizer || true)"
for c in "$cuda_home/bin/compute-sanitizer" "$cuda_home/compute-sanitizer/compute-sanitizer"; do
  [[ -z "$sanitizer" && -x "$c" ]] && sanitizer="$c"
done
# First, before anything trusts the kernels: the op tests of the project's own kernels and of
# cuBLAS, and the fused engine on a small model (its arena in shared memory, so racecheck sees
# the phases' barriers); cuDNN's convolutions are left out (slow under the sanitizer, not ours).
small_ops='GpuOps.*:Shapes/PoolOps.*:Shapes/DenseOps.*:CudaSplit*:FusedEngine.AutoRunsFusedAndSaysSo:Fused/FusedModels.EvaluateAndPredictMatchCpu/odd:FusedEngine.ManyStepsPerLaunchChangeNoBit'
for tool in memcheck racecheck synccheck; do
  if [[ -z "$sanitizer" ]]; then
    unavailable "$tool" "no compute-sanitizer"
  elif [[ -x "$gpu_tests" ]]; then
    step "$tool" 100 "$sanitizer" --tool "$tool" --error-exitcode 3 \
      "$gpu_tests" --gtest_filter="$small_ops" --gtest_brief=1
  else
    not_built "$tool" splitconv_gpu_tests
  fi
done

if [[ -x "$gpu_tests" ]]; then
  # SPLITCONV_REQUIRE_GPU: a GPU test fails, not skips, when it finds no device.
  step gpu-tests 150 env SPLITCONV_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu \
    --no-tests=error --output-on-failure -j 8 --timeout 120 --output-junit "$out/gpu-tests.xml"
else
  not_built gpu-tests splitconv_gpu_tests
fi

for v in v0 v1; do
  if [[ -x "$bin" ]]; then
    step "train-$v" 120 "$bin" train "models/seed-$v.net" --dataset mnist --device cuda \
      --epochs 5 --json "$out/train-$v.json" --data-dir "$data" --verbose
  else
    not_built "train-$v" splitconv
  fi
done

# The fused engine (--engine fused): both seed models, 5 epochs, as above.
for v in v0 v1; do
  if [[ -x "$bin" ]]; then
    step "train-fused-$v" 120 "$bin" train "models/seed-$v.net" --dataset mnist --device cuda \
      --engine fused --epochs 5 --json "$out/train-fused-$v.json" --data-dir "$data" --verbose
  else
    not_built "train-fused-$v" splitconv
  fi
done

# The fused engine with one block per image (its arena in shared memory) instead of the
# cluster it chooses on Hopper, which runs up to 64 steps in one persistent launch
# (--steps-per-launch), and the same with a launch per step: which is faster is measured here.
if [[ -x "$bin" ]]; then
  step train-fused-v0-block 120 "$bin" train models/seed-v0.net --dataset mnist --device cuda \
    --engine fused --fused-blocks 1 --epochs 5 --json "$out/train-fused-v0-block.json" \
    --data-dir "$data" --verbose
  step train-fused-v0-block-1 120 "$bin" train models/seed-v0.net --dataset mnist --device cuda \
    --engine fused --fused-blocks 1 --steps-per-launch 1 --epochs 5 \
    --json "$out/train-fused-v0-block-1.json" --data-dir "$data" --verbose
else
  not_built train-fused-v0-block splitconv
  not_built train-fused-v0-block-1 splitconv
fi

# seed-v1 with the project's own n×1 / 1×n kernels for conv3/conv4 (auto measures both).
if [[ -x "$bin" ]]; then
  step train-v1-own 120 "$bin" train models/seed-v1.net --dataset mnist --device cuda \
    --epochs 5 --conv-impl own --json "$out/train-v1-own.json" --data-dir "$data" --verbose
else
  not_built train-v1-own splitconv
fi

# --deterministic: the same seed twice, each run finding its own algorithms, gives the same
# checkpoint byte for byte (parameters, moments), through cuDNN (v0) and the own kernels (v1).
deterministic_twice() {
  local v
  for v in v0 v1; do
    for run in a b; do
      "$bin" train "models/seed-$v.net" --dataset mnist --device cuda --epochs 1 --deterministic \
        --verbose --data-dir "$data" --save "$out/det-$v-$run.safetensors" || return 1
    done
    cmp "$out/det-$v-a.safetensors" "$out/det-$v-b.safetensors" || return 1
    echo "seed-$v: the two deterministic runs wrote identical checkpoints"
  done
}
if [[ -x "$bin" ]]; then
  export bin out data
  export -f deterministic_twice
  step train-deterministic 100 bash -c deterministic_twice
else
  not_built train-deterministic splitconv
fi

# Time to accuracy: the fast-mnist recipe (docs/results.md, section 9) to 99% test accuracy,
# with the fused and the graph engine, then the PyTorch peer running the same recipe on the
# same card.
recipe=(models/fast-mnist.net --dataset mnist --device cuda --batch 256 --epochs 2 --lr 0.01
  --beta1 0.7 --beta2 0.9 --eps 1e-7 --lr-schedule onecycle --shuffle none --target-accuracy 0.99
  --eval-every 20 --data-dir "$data")
for engine in fused graph; do
  if [[ -x "$bin" ]]; then
    step "target-$engine" 60 "$bin" train "${recipe[@]}" --engine "$engine" \
      --json "$out/target-$engine.json"
  else
    not_built "target-$engine" splitconv
  fi
done
# The split-kernel harness: every variant validated against the CPU, then timed against cuDNN.
bench_kernels() {
  local op size c
  for op in vert horz pair; do
    echo "=== seed conv3: --op $op --n 3 --c 64 --m 64 --size 5x5 --batch 32"
    "$bin" bench kernel --op "$op" --n 3 --c 64 --m 64 --size 5x5 --batch 32 || return 1
  done
  for c in 64 256; do
    for size in 14x14 28x28; do
      for op in vert horz pair; do
        echo "=== --op $op --n 3 --c $c --m $c --size $size --batch 32"
        "$bin" bench kernel --op "$op" --n 3 --c "$c" --m "$c" --size "$size" --batch 32 || return 1
      done
    done
  done
}
if [[ -x "$bin" ]]; then
  export bin
  export -f bench_kernels
  step bench-kernels 120 bash -c bench_kernels
else
  not_built bench-kernels splitconv
fi

# The PyTorch peer at its best (tools/peer/pytorch_seed.py): the modes in order of value, each
# for both models, so a step cut short has the strongest first; --time-limit stops it starting
# a run late (its JSON is written after every run).
peer_python=""
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import torch' 2>/dev/null; then peer_python="$py"; break; fi
done
if [[ " ${GPU_CHECK_SKIP:-} " == *" pytorch-peer "* ]]; then
  step pytorch-peer 0 true  # listed as skipped (GPU_CHECK_SKIP), whether PyTorch is here or not
elif [[ -z "$peer_python" ]]; then
  step_names+=(pytorch-peer)
  finish pytorch-peer "SKIPPED (no PyTorch in python3)" 0
elif ((rehearse)); then
  # A few steps on the CPU: the modes that need a GPU or torch.compile say so and are skipped.
  step pytorch-peer 120 "$peer_python" tools/peer/pytorch_seed.py --data-dir "$data" \
    --device cpu --threads 2 --models "$peer_models" --modes "$peer_modes" --epochs 1 \
    --limit 320 --json "$out/pytorch-peer.json"
else
  peer_left=$((budget - (SECONDS - started) - 5))
  peer_limit=$((peer_left < 300 ? peer_left : 300))
  step pytorch-peer 300 "$peer_python" tools/peer/pytorch_seed.py --data-dir "$data" \
    --models "$peer_models" --modes "$peer_modes" --epochs 5 \
    --time-limit $((peer_limit > 60 ? peer_limit - 40 : 20)) --json "$out/pytorch-peer.json"
fi

# The PyTorch peer of the time-to-accuracy recipe, 3 seeds, eager and compiled.
if [[ -n "$peer_python" ]] && ((!rehearse)); then
  step target-pytorch 120 "$peer_python" tools/peer/pytorch_target.py --data-dir "$data" \
    --epochs 2 --seeds 3 --modes eager,compile --json "$out/target-pytorch.json"
fi

if [[ "${GPU_CHECK_PROFILE:-0}" == 1 && -x "$bin" ]]; then
  for v in v0 v1; do
    step "profile-$v" 100 env SPLITCONV="$bin" SPLITCONV_DATA="$data" \
      PROFILE_SKIP=3000 PROFILE_COUNT=120 tools/profile.sh "models/seed-$v.net" "$out/profile-$v"
  done
fi

if [[ -x "$cpu_tests" ]]; then
  step cpu-tests 120 ctest --test-dir "$build" -L cpu --no-tests=error --output-on-failure -j "$jobs" \
    --timeout 100 --output-junit "$out/cpu-tests.xml"
else
  not_built cpu-tests splitconv_tests
fi

# Last, as time allows: whole training steps under memcheck (cuDNN, cuBLAS, the captured graph).
if [[ -z "$sanitizer" ]]; then
  unavailable memcheck-backend "no compute-sanitizer"
elif [[ -x "$gpu_tests" ]]; then
  step memcheck-backend 120 "$sanitizer" --tool memcheck --error-exitcode 3 \
    "$gpu_tests" --gtest_filter='CudaBackend.MetricsCountImagesAndReset' --gtest_brief=1
else
  not_built memcheck-backend splitconv_gpu_tests
fi

# The layer benchmarks (issue 6), after everything else. bench-conv: one shape of each kind
# through every CUDA variant (cuDNN, own, fused), the per-layer times of both seed models and
# the measured rule. bench-sweep: the GPU grid (n 3/5/7, c = m 16..256, maps 5..56, batch 32
# and 256) as a CSV and, where python3 has matplotlib, a plot; --time-limit stops it starting
# new shapes in time to write them.
bench_conv() {
  local args
  for args in "--n 3 --c 64 --m 64 --size 5x5" "--n 3 --c 64 --m 64 --size 28x28" \
    "--n 5 --c 128 --m 128 --size 14x14" "--n 7 --c 64 --m 64 --size 28x28 --padding same"; do
    echo "=== bench conv $args --batch 32"
    "$bin" bench conv $args --batch 32 --device cuda --json "$out/bench-conv-${args//[ -]/_}.json" || return 1
  done
  for v in v0 v1; do
    echo "=== bench layers models/seed-$v.net"
    "$bin" bench layers "models/seed-$v.net" --device cuda --json "$out/bench-layers-$v.json" || return 1
  done
  echo "=== analyze --rule measured"
  "$bin" analyze models/seed-v0.net models/wide5-v0.net --rule measured --device cuda \
    --json "$out/analyze-measured.json"
}
bench_sweep() {
  local plot=()
  if python3 -c 'import matplotlib' 2>/dev/null || /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    plot=(--plot "$out/bench-sweep-gpu.png")
  else
    echo "no matplotlib in python3: no plot here (later: tools/plot.py bench-sweep-gpu.csv OUT.png)"
  fi
  "$bin" bench sweep --device cuda --grid full --time-limit 150 --progress \
    --csv "$out/bench-sweep-gpu.csv" "${plot[@]}"
}
if [[ -x "$bin" ]]; then
  export bin out
  export -f bench_conv bench_sweep
  step bench-conv 90 bash -c bench_conv
  step bench-sweep 200 bash -c bench_sweep
else
  not_built bench-conv splitconv
  not_built bench-sweep splitconv
fi

# --- the record and the summary ---------------------------------------------------------------
# The record is written whatever happened above: what did not run is null in it.
record_args=(--started "$started_at" --seconds $((SECONDS - started)) --budget "$budget"
  --peer-models "$peer_models" --peer-modes "$peer_modes")
[[ -n "${version:-}" ]] && record_args+=(--cudnn-header "$version")
[[ -n "${GPU_CHECK_COMMIT:-}" ]] && record_args+=(--commit "$GPU_CHECK_COMMIT")
((rehearse)) && record_args+=(--rehearsal)
record=""
if ! command -v python3 >/dev/null; then
  log "no python3: no record written"
elif record="$(python3 tools/gpu_record.py write "$out" "${record_args[@]}" 2>"$out/record.err")"; then
  log "record: $record$( ((rehearse)) || echo " (commit it as docs/gpu/$(basename "$record"))")"
else
  log "the record could not be written: $(tail -n1 "$out/record.err")"
  record=""
fi

tests_summary() {  # KEY (tests or cpu_tests): counts from the record, which read ctest's XML
  [[ -n "$record" ]] || { echo "no record"; return; }
  python3 - "$record" "$1" <<'EOF' 2>/dev/null || echo "no result"
import json, sys
t = json.load(open(sys.argv[1]))[sys.argv[2]]
print("no result" if t["passed"] is None else
      "%d passed, %d failed, %d skipped" % (t["passed"], t["failed"], t["skipped"]))
EOF
}
sanitizer_summary() {  # LOG
  grep -hE 'ERROR SUMMARY|RACECHECK SUMMARY' "$1" 2>/dev/null | tail -n1
}
train_summary() {  # JSON
  python3 - "$1" <<'EOF' 2>/dev/null || echo "no report"
import json, sys
r = json.load(open(sys.argv[1]))
eps = r.get("epochs", [])
print("test_accuracy %.4f  train_seconds %.1f  images_per_second %.0f  (%d epochs, last loss %.4f)"
      % (r["test_accuracy"], r["train_seconds"], r["images_per_second"], len(eps),
         eps[-1]["loss"] if eps else float("nan")))
EOF
}

failed=0
for name in "${step_names[@]}"; do
  if ((rehearse)); then
    [[ "${step_result[$name]}" == ok || "${step_result[$name]}" == SKIPPED* ]] || failed=1
  else
    [[ "${step_result[$name]}" == ok ]] || failed=1
  fi
done
[[ -n "$record" ]] || failed=1
{
  echo
  card="$(nvidia-smi -L 2>/dev/null | head -n1 | sed 's/ (UUID.*//')"
  echo "== gpu-check$( ((rehearse)) && echo " rehearsal") summary (${card:-no GPU found}, sm_$cap, $((SECONDS - started))s)"
  printf '%-18s %-30s %5s  %s\n' step result secs detail
  for name in "${step_names[@]}"; do
    detail=""
    case "$name" in
      gpu-tests) detail="$(tests_summary tests)" ;;
      cpu-tests) detail="$(tests_summary cpu_tests)" ;;
      memcheck | racecheck | synccheck | memcheck-backend) detail="$(sanitizer_summary "$out/$name.log")" ;;
      train-v0 | train-v1 | train-v1-own) detail="$(train_summary "$out/$name.json")" ;;
      devices) detail="$(grep -m1 '^cuda:0' "$out/devices.log" 2>/dev/null)" ;;
      pytorch-peer) detail="$(grep -h '^fastest' "$out/pytorch-peer.log" 2>/dev/null | tr '\n' ';')" ;;
      bench-sweep) detail="$(grep -hE '^[0-9]+ of [0-9]+ shapes|no matplotlib' "$out/bench-sweep.log" 2>/dev/null | tr '\n' ';')" ;;
    esac
    printf '%-18s %-30s %5s  %s\n' "$name" "${step_result[$name]}" "${step_seconds[$name]}" "$detail"
  done
  if [[ -n "$record" ]]; then
    python3 - "$record" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = r["tests"]["failures"]
print("\n-- failed GPU tests:" + (" no result" if f is None else " none" if not f else ""))
for name in f or []:
    print("   " + name)
for p in r["peer"]:
    if p["seconds"] is None:
        continue
    print("   pytorch %s %-26s %7.2f s %9.0f img/s" % (p["model"], p["mode"], p["seconds"],
                                                      p["images_per_second"]))
for t in r["train"]:
    if t["speedup_vs_fastest_peer"] is not None:
        print("   splitconv %s %s: %.2fx the fastest PyTorch mode" % (
            t["model"], t["engine"], t["speedup_vs_fastest_peer"]))
EOF
  fi
  for v in v0 v1 v1-own; do
    [[ -f "$out/train-$v.log" ]] && grep -h 'cudnn\|own\|train_step' "$out/train-$v.log" | sed "s/^/   $v: /"
  done
  [[ -f "$out/bench-kernels.log" ]] && grep -E '^===|vs|cudnn|own' "$out/bench-kernels.log" | head -n 80
  [[ -n "$record" ]] && echo "record: $record"
} | tee "$out/summary.txt"
exit "$failed"
