#!/usr/bin/env bash
# Profiles a short CUDA training run of MODEL (one epoch on the first 9,600 MNIST images: 300
# steps of 32) and prints where the step's time goes, kernel by kernel:
#   1. a plain run, for the unprofiled speed (train.log, train.json);
#   2. Nsight Systems, where installed: a timeline of the whole run (timeline.nsys-rep) and its
#      kernel and NVTX summaries (nsys-kernels.csv, nsys-nvtx.csv; NVTX ranges name the layers);
#   3. Nsight Compute on a window of the training step's kernels, past the warm-up: time, DRAM
#      bytes and throughput, FP32 instruction counts (ncu.ncu-rep, ncu-raw.csv), and the table
#      of calls, total time, share of the window, DRAM GB/s and % of peak, GFLOP/s.
# A profiler that is missing, or that cannot read the GPU's counters, is reported and skipped.
#
# usage: tools/profile.sh MODEL [OUTDIR]           (OUTDIR default: profile-out)
#        tools/profile.sh --table ncu|nsys|nvtx CSV  print the table of a CSV written before
#        tools/profile.sh --help
#        Relative paths (MODEL, OUTDIR, CSV, $SPLITCONV, $SPLITCONV_DATA) are taken from the
#        current directory.
# needs: a CUDA build of splitconv and a CUDA device; NVIDIA's Nsight Compute (ncu) and, for
#        the timeline, Nsight Systems (nsys), both from the CUDA toolkit (tools/setup.sh does
#        not install them); python3 for the tables.
# env:   SPLITCONV        the binary (default build/splitconv in the repository)
#        SPLITCONV_DATA   the data directory (default data in the repository)
#        PROFILE_DATASET  mnist (default) or fashion-mnist;  PROFILE_LIMIT  images (9600)
#        PROFILE_KERNELS  ncu's kernel filter (default regex:. , every kernel of the step)
#        PROFILE_SKIP     kernel launches ncu lets pass first: set-up, algorithm search and
#                         the first steps (default 3000, about step 75)
#        PROFILE_COUNT    kernel launches ncu profiles from there (default 400, ~10 steps)
#        NCU, NSYS        the profiler commands (default ncu, nsys; /usr/local/cuda/bin too)
set -euo pipefail
here="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
abs() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$here/$1"; fi; }
usage_line="usage: tools/profile.sh MODEL [OUTDIR] | --table ncu|nsys|nvtx CSV; --help"

say() { echo "profile: $*" >&2; }

# --- the tables: a small parser of ncu's and nsys's CSV output --------------------------------
table() {  # table ncu|nsys|nvtx CSV
  if ! command -v python3 >/dev/null; then
    say "python3 not found: no table; the CSV is $2"
    return 0
  fi
  python3 - "$@" <<'PY'
import csv, re, sys

kind, path = sys.argv[1], sys.argv[2]
TOP = 25

def rows_from(path):
    """CSV rows, without the tool's own lines (==PROF==, Processing ..., blank)."""
    with open(path, newline="", errors="replace") as f:
        lines = [l for l in f if l.startswith('"') or (l[:1].isalnum() and "," in l)]
    return list(csv.reader(lines))

def number(s):
    s = (s or "").strip().replace(",", "")
    try:
        return float(s)
    except ValueError:
        return None

PREFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "n": 1e-9, "u": 1e-6, "m": 1e-3}
BASES = ("second", "byte", "inst", "cycle", "sector", "request", "warp", "thread")
SHORT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9}

def scale(unit):
    """Factor to the base unit: 'Gbyte/second' -> 1e9, 'usecond' -> 1e-6, '%' -> 1."""
    def one(u):
        u = u.strip()
        if u in SHORT:  # ncu abbreviates times: "ns", "us", "ms"
            return SHORT[u]
        for b in BASES:
            if u.endswith(b) and u[: -len(b)] in PREFIX:
                return PREFIX[u[: -len(b)]]
        return 1.0
    num, _, den = (unit or "").partition("/")
    return one(num) / (one(den) if den else 1.0)

def short(name, width=64):
    name = re.sub(r"\s+", " ", name.strip())
    return name if len(name) <= width else name[: width - 13] + "..." + name[-10:]

def fmt(v, spec):
    return "-" if v is None else format(v, spec)

# ncu's base unit of a metric, for a CSV without units (raw page without its units row).
DEFAULT_UNITS = {"gpu__time_duration.sum": "nsecond"}

def ncu_launches(rows):
    """One dict per profiled launch: name -> metric values in base units (ns for time).
    Reads both of ncu's CSV layouts: --page raw (a column per metric, a row of units under
    the header) and --page details (a row per metric: Metric Name, Metric Unit, Metric Value)."""
    head = next((i for i, r in enumerate(rows) if "Kernel Name" in r), None)
    if head is None:
        return []
    h = rows[head]
    col = {name: i for i, name in enumerate(h)}
    launches = {}
    if "Metric Name" in col:  # details layout
        for r in rows[head + 1 :]:
            if len(r) < len(h) or r[col["ID"]] == "ID":
                continue
            key = (r[col["ID"]], r[col.get("Process ID", col["ID"])])
            d = launches.setdefault(key, {"name": r[col["Kernel Name"]]})
            v = number(r[col["Metric Value"]])
            if v is not None:
                m = r[col["Metric Name"]]
                d[m] = v * scale(r[col["Metric Unit"]] or DEFAULT_UNITS.get(m, ""))
        return list(launches.values())
    body = rows[head + 1 :]
    units = [""] * len(h)
    if body and not body[0][col.get("ID", 0)].strip():  # the row of units
        units, body = body[0] + [""] * (len(h) - len(body[0])), body[1:]
    out = []
    for r in body:
        if len(r) < len(h):
            continue
        d = {"name": r[col["Kernel Name"]]}
        for name, i in col.items():
            if "__" in name:  # a metric (gpu__time_duration.sum, dram__bytes.sum, ...)
                v = number(r[i])
                if v is not None:
                    d[name] = v * scale(units[i] or DEFAULT_UNITS.get(name, ""))
        out.append(d)
    return out

def ncu_table(path):
    launches = ncu_launches(rows_from(path))
    if not launches:
        print(f"no kernels in {path}")
        return 1
    agg = {}
    for d in launches:
        t = d.get("gpu__time_duration.sum")
        if t is None:
            continue
        t_ns = t * 1e9  # base unit is seconds
        a = agg.setdefault(d["name"], {"calls": 0, "ns": 0.0})
        a["calls"] += 1
        a["ns"] += t_ns

        def add(key, value):  # a sum, and the time of the calls that had the metric
            if value is not None:
                a[key] = a.get(key, 0.0) + value
                a[key + "_ns"] = a.get(key + "_ns", 0.0) + t_ns

        b = d.get("dram__bytes.sum")
        if b is None and "dram__bytes.sum.per_second" in d:
            b = d["dram__bytes.sum.per_second"] * t  # bytes/s x s
        add("bytes", b)
        for key, m in (("pct", "dram__throughput.avg.pct_of_peak_sustained_elapsed"),
                       ("sm", "sm__throughput.avg.pct_of_peak_sustained_elapsed")):
            add(key, d[m] * t_ns if m in d else None)  # time-weighted mean over the calls
        ops = [d.get(f"sm__sass_thread_inst_executed_op_{op}_pred_on.sum") for op in ("fadd", "fmul", "ffma")]
        if any(o is not None for o in ops):
            fadd, fmul, ffma = (o or 0.0 for o in ops)
            add("flop", fadd + fmul + 2.0 * ffma)
    total = sum(a["ns"] for a in agg.values())
    if not total:
        print(f"no kernel times (gpu__time_duration.sum) in {path}")
        return 1
    print(f"{'kernel':64} {'calls':>6} {'total us':>10} {'share':>6} {'avg us':>8} "
          f"{'DRAM GB/s':>9} {'DRAM %pk':>8} {'GFLOP/s':>8} {'SM %pk':>6}")
    items = sorted(agg.items(), key=lambda kv: -kv[1]["ns"])
    for name, a in items[:TOP]:
        ns = a["ns"]
        per_ns = lambda key: a[key] / a[key + "_ns"] if a.get(key + "_ns") else None
        gbs, gflops = per_ns("bytes"), per_ns("flop")  # bytes/ns = GB/s, flop/ns = GFLOP/s
        pct, sm = per_ns("pct"), per_ns("sm")
        print(f"{short(name):64} {a['calls']:6d} {ns / 1e3:10.1f} {100 * ns / total:5.1f}% "
              f"{ns / 1e3 / a['calls']:8.2f} {fmt(gbs, '9.1f')} {fmt(pct, '8.1f')} "
              f"{fmt(gflops, '8.1f')} {fmt(sm, '6.1f')}")
    if len(items) > TOP:
        rest = sum(a["ns"] for _, a in items[TOP:])
        print(f"{'(' + str(len(items) - TOP) + ' more kernels)':64} {'':6} {rest / 1e3:10.1f} {100 * rest / total:5.1f}%")
    calls = sum(a["calls"] for a in agg.values())
    print(f"{'total':64} {calls:6d} {total / 1e3:10.1f} 100.0%")
    steps = sum(a["calls"] for n, a in agg.items() if "adam" in n.lower())
    if steps:
        print(f"window: {steps} optimizer steps (adam launches), {total / 1e3 / steps:.1f} us of kernel time a step")
    print("GFLOP/s counts FP32 FADD/FMUL/FFMA (FFMA = 2); tensor-core math is not counted.")
    return 0

def nsys_table(path, what):
    rows = rows_from(path)
    head = next((i for i, r in enumerate(rows) if "Name" in r or "Range" in r), None)
    if head is None:
        print(f"no {what} summary in {path}")
        return 1
    h = rows[head]
    col = {n: i for i, n in enumerate(h)}
    name_i = col.get("Name", col.get("Range"))
    tot_i = next((i for n, i in col.items() if n.startswith("Total Time")), None)
    inst_i = col.get("Instances", col.get("Count"))
    if tot_i is None or inst_i is None:
        print(f"unexpected columns in {path}: {h}")
        return 1
    unit = 1.0 if "(ns)" in h[tot_i] else 1e3 if "(us)" in h[tot_i] else 1e6 if "(ms)" in h[tot_i] else 1.0
    items = []
    for r in rows[head + 1 :]:
        if len(r) <= max(name_i, tot_i, inst_i):
            continue
        t, n = number(r[tot_i]), number(r[inst_i])
        if t is not None and n:
            items.append((r[name_i], int(n), t * unit))
    total = sum(t for _, _, t in items)
    if not total:
        print(f"no {what} times in {path}")
        return 1
    items.sort(key=lambda x: -x[2])
    label = "kernel" if what == "kernel" else "NVTX range"
    print(f"{label:64} {'calls':>6} {'total us':>10} {'share':>6} {'avg us':>8}")
    for name, n, t in items[:TOP]:
        print(f"{short(name):64} {n:6d} {t / 1e3:10.1f} {100 * t / total:5.1f}% {t / 1e3 / n:8.2f}")
    if len(items) > TOP:
        rest = sum(t for _, _, t in items[TOP:])
        print(f"{'(' + str(len(items) - TOP) + ' more)':64} {'':6} {rest / 1e3:10.1f} {100 * rest / total:5.1f}%")
    print(f"{'total':64} {sum(n for _, n, _ in items):6d} {total / 1e3:10.1f} 100.0%")
    return 0

if kind == "ncu":
    sys.exit(ncu_table(path))
elif kind == "nsys":
    sys.exit(nsys_table(path, "kernel"))
elif kind == "nvtx":
    sys.exit(nsys_table(path, "nvtx"))
sys.exit(f"table: unknown kind {kind}")
PY
}

case "${1:-}" in
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
  --table)
    [[ $# -eq 3 ]] || { say "--table takes KIND CSV ($usage_line)"; exit 2; }
    case "$2" in ncu | nsys | nvtx) ;; *) say "--table: unknown kind '$2' ($usage_line)"; exit 2 ;; esac
    [[ -f "$3" ]] || { say "--table: no CSV file $3"; exit 2; }
    table "$2" "$3"
    exit $? ;;
  -*) say "unknown option '$1' ($usage_line)"; exit 2 ;;
esac
if [[ $# -lt 1 || $# -gt 2 ]]; then
  say "expected MODEL [OUTDIR], got $# arguments ($usage_line)"
  exit 2
fi
[[ "${2:-}" != -* ]] || { say "unknown option '$2' ($usage_line)"; exit 2; }

model="$(abs "$1")"
out="$(abs "${2:-profile-out}")"
bin="$(abs "${SPLITCONV:-$root/build/splitconv}")"
export SPLITCONV_DATA="$(abs "${SPLITCONV_DATA:-$root/data}")"
cd "$root"
dataset="${PROFILE_DATASET:-mnist}"
limit="${PROFILE_LIMIT:-9600}"
kernels="${PROFILE_KERNELS:-regex:.}"
skip="${PROFILE_SKIP:-3000}"
count="${PROFILE_COUNT:-400}"

[[ -f "$model" ]] || { say "no model spec $model"; exit 2; }
[[ -x "$bin" ]] || { say "no binary $bin: build with tools/setup.sh (CUDA found) or set SPLITCONV"; exit 1; }
mkdir -p "$out"

find_tool() {  # find_tool NAME OVERRIDE: the command, or nothing
  local name="$1" override="$2"
  if [[ -n "$override" ]]; then command -v "$override" || true; return; fi
  command -v "$name" || { [[ -x "/usr/local/cuda/bin/$name" ]] && echo "/usr/local/cuda/bin/$name"; } || true
}
ncu_cmd="$(find_tool ncu "${NCU:-}")"
nsys_cmd="$(find_tool nsys "${NSYS:-}")"

# The device: profiling CUDA needs one.
if ! "$bin" devices --json "$out/devices.json" >"$out/devices.txt" 2>&1 || ! grep -q '"index"' "$out/devices.json"; then
  cat "$out/devices.txt" >&2
  say "no CUDA device (or $bin was built without CUDA): nothing to profile"
  exit 1
fi
say "device: $(grep -m1 -o '"name" *: *"[^"]*"' "$out/devices.json" | sed 's/.*: *"//; s/"$//')"

run=("$bin" train "$model" --dataset "$dataset" --device cuda --epochs 1 --limit "$limit")

# 1. Unprofiled, for the real speed and to check the command before spending profiler time on it.
say "plain run: ${run[*]}"
if ! "${run[@]}" --json "$out/train.json" >"$out/train.log" 2>&1; then
  tail -n 20 "$out/train.log" >&2
  say "the training run failed; see $out/train.log"
  exit 1
fi
tr '\r' '\n' <"$out/train.log" | grep -v '^ *$' | tail -n 3 >&2 || true

status=()

# 2. Nsight Systems: the whole run's timeline; CUDA graphs traced node by node.
if [[ -z "$nsys_cmd" ]]; then
  say "nsys (Nsight Systems) not found: no timeline"
  status+=("nsys: not installed")
else
  graph_flag=()
  nsys_help="$("$nsys_cmd" profile --help 2>&1 || true)"
  [[ "$nsys_help" == *--cuda-graph-trace* ]] && graph_flag=(--cuda-graph-trace=node)
  say "nsys: timeline of the whole run"
  if "$nsys_cmd" profile --trace=cuda,nvtx "${graph_flag[@]}" --force-overwrite=true \
       -o "$out/timeline" "${run[@]}" >"$out/nsys.log" 2>&1 && [[ -f "$out/timeline.nsys-rep" ]]; then
    stats() {  # stats REPORT_NEW REPORT_OLD FILE
      "$nsys_cmd" stats --force-export=true --format csv --report "$1" --output - \
        "$out/timeline.nsys-rep" >"$3" 2>>"$out/nsys.log" && grep -q ',' "$3" ||
      "$nsys_cmd" stats --force-export=true --format csv --report "$2" --output - \
        "$out/timeline.nsys-rep" >"$3" 2>>"$out/nsys.log"
    }
    stats cuda_gpu_kern_sum gpukernsum "$out/nsys-kernels.csv" || say "nsys stats: no kernel summary (see $out/nsys.log)"
    stats nvtx_sum nvtxsum "$out/nsys-nvtx.csv" || say "nsys stats: no NVTX summary (see $out/nsys.log)"
    status+=("nsys: $out/timeline.nsys-rep")
  else
    tail -n 5 "$out/nsys.log" >&2
    say "nsys failed (see $out/nsys.log); going on without a timeline"
    status+=("nsys: failed")
  fi
fi

# 3. Nsight Compute: counters of a window of the step's kernels.
metrics=gpu__time_duration.sum,dram__bytes.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__throughput.avg.pct_of_peak_sustained_elapsed
metrics+=,sm__sass_thread_inst_executed_op_fadd_pred_on.sum
metrics+=,sm__sass_thread_inst_executed_op_fmul_pred_on.sum
metrics+=,sm__sass_thread_inst_executed_op_ffma_pred_on.sum
ncu_ok=0
if [[ -z "$ncu_cmd" ]]; then
  say "ncu (Nsight Compute) not found: no per-kernel counters"
  status+=("ncu: not installed")
else
  say "ncu: kernels $((skip + 1))..$((skip + count)) matching $kernels (this takes a minute or two)"
  rm -f "$out/ncu.ncu-rep"
  "$ncu_cmd" --nvtx --target-processes all -k "$kernels" --launch-skip "$skip" --launch-count "$count" \
    --metrics "$metrics" -f -o "$out/ncu" "${run[@]}" >"$out/ncu.log" 2>&1 || true
  if grep -q 'ERR_NVGPUCTRPERM' "$out/ncu.log"; then
    say "ncu cannot read the GPU performance counters (ERR_NVGPUCTRPERM): run as root, or load the"
    say "  driver with NVreg_RestrictProfilingToAdminUsers=0 (in Docker: --cap-add SYS_ADMIN)"
    status+=("ncu: no permission for the counters")
  elif [[ ! -s "$out/ncu.ncu-rep" ]]; then
    tail -n 5 "$out/ncu.log" >&2
    say "ncu wrote no report (see $out/ncu.log); fewer than $skip launches? set PROFILE_SKIP lower"
    status+=("ncu: no report")
  elif "$ncu_cmd" -i "$out/ncu.ncu-rep" --csv --page raw --print-units base >"$out/ncu-raw.csv" 2>>"$out/ncu.log"; then
    ncu_ok=1
    status+=("ncu: $out/ncu.ncu-rep")
  else
    say "ncu could not export its report as CSV (see $out/ncu.log)"
    status+=("ncu: export failed")
  fi
fi

# The tables.
if ((ncu_ok)); then
  echo
  echo "== Nsight Compute: kernels $((skip + 1))..$((skip + count)) of ${run[*]}"
  echo "   (clocks locked to base by ncu: times are longer than a plain run; the shares are what count)"
  table ncu "$out/ncu-raw.csv" | tee "$out/kernels.txt" || true
fi
if [[ -s "$out/nsys-kernels.csv" ]]; then
  echo
  echo "== Nsight Systems: every kernel of the whole run (set-up and evaluation included)"
  table nsys "$out/nsys-kernels.csv" | tee "$out/nsys-kernels.txt" || true
fi
if [[ -s "$out/nsys-nvtx.csv" ]]; then
  echo
  echo "== Nsight Systems: NVTX ranges (layers; inside a replayed CUDA graph they are not re-emitted)"
  table nvtx "$out/nsys-nvtx.csv" | tee "$out/nsys-nvtx.txt" || true
fi
if ((!ncu_ok)) && [[ ! -s "$out/nsys-kernels.csv" ]]; then
  echo
  echo "== no profiler output: only the plain run's speed ($out/train.log)"
fi
echo
printf 'profile: %s\n' "${status[@]}"
say "reports in $out/"
