#!/usr/bin/env python3
"""The record of a GPU run: docs/gpu/DATE-COMMIT.json (format: docs/design.md, JSON reports).

  gpu_record.py write OUTDIR [--rehearsal] [--started ISO] [--seconds S] [--budget S]
                             [--commit SHA] [--peer-models v0,v1] [--peer-modes M,...]
                             [--cudnn-header VERSION]
      reads what tools/gpu-check.sh left in OUTDIR (steps.tsv, nvidia-smi.csv, devices.json,
      gpu-tests.xml, the sanitizer logs, train-*.json, pytorch-peer.json) and writes
      OUTDIR/DATE-COMMIT.json (rehearsal-DATE-COMMIT.json for a rehearsal). Whatever a run
      did not reach is null; the file is valid JSON whichever steps failed.
  gpu_record.py status [--repo DIR] [--records DIR]
      what tools/gpu-status.sh prints: the recorded runs, the failed tests of the last one, and
      the GPU code changed since it.
  gpu_record.py sources [--repo DIR]
      the `cuda_sources` object of the tree as it is now, as JSON.
"""
import datetime
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

FORMAT = "splitconv-gpu-record-1"
# The GPU code: the CUDA backend, the public headers, the GPU tests, the fused engine's block
# programs (host/fused/, compiled for the GPU as well as the CPU), and the two host files
# compiled into the CUDA library (CMakeLists.txt, splitconv_cuda). A path absent from a tree
# hashes to null.
GPU_PATHS = ["cuda", "include", "tests/gpu", "host/fused", "host/backend_factory.cpp",
             "host/bench/dispatch.cpp"]
# Linked into every CUDA binary but shared with the CPU build: the plan, trainer and CPU twins
# the GPU tests compare against. Reported beside the GPU code, not as part of it.
LINKED_PATHS = ["host", "tools/cli"]
# gpu-check's training steps: (step, model, engine).
TRAIN_RUNS = [("train-v0", "seed-v0", "cuda-auto"), ("train-v1", "seed-v1", "cuda-auto"),
              ("train-v1-own", "seed-v1", "cuda-own"),
              ("train-fused-v0", "seed-v0", "cuda-fused"), ("train-fused-v1", "seed-v1", "cuda-fused"),
              ("train-fused-v0-block", "seed-v0", "cuda-fused-block"),
              ("train-fused-v0-block-1", "seed-v0", "cuda-fused-block-launch-per-step")]
SANITIZER_LOGS = [("memcheck_errors", "memcheck"), ("racecheck_hazards", "racecheck"),
                  ("synccheck_errors", "synccheck"), ("memcheck_backend_errors", "memcheck-backend")]


class UsageError(Exception):
    pass


# --- hashes of the GPU sources, as git computes them ---------------------------------------------

def git(repo, *args, check=True):
    """Runs git in repo; returns stdout, or None when git is absent or (check=False) fails."""
    try:
        r = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    except OSError:
        return None
    if r.returncode != 0:
        if check:
            raise RuntimeError(f"git {' '.join(args)}: {r.stderr.strip()}")
        return None
    return r.stdout


def in_git_repo(repo):
    """Whether repo is the top of a git work tree (not a folder inside another repository)."""
    top = git(repo, "rev-parse", "--show-toplevel", check=False)
    return top is not None and os.path.realpath(top.strip()) == os.path.realpath(repo)


def git_object(kind, body):
    return hashlib.sha1(b"%s %d\0" % (kind, len(body)) + body).digest()


def blob_of(path):
    if os.path.islink(path):
        return "120000", git_object(b"blob", os.readlink(path).encode())
    with open(path, "rb") as f:
        body = f.read()
    return ("100755" if os.access(path, os.X_OK) else "100644"), git_object(b"blob", body)


def tree_of(files, base):
    """The git tree id of the files (paths relative to base, '/'-separated)."""
    entries = {}  # name -> (mode, raw id)
    subdirs = {}
    for f in files:
        head, _, rest = f.partition("/")
        if rest:
            subdirs.setdefault(head, []).append(rest)
        else:
            entries[head] = blob_of(os.path.join(base, head))
    for d, sub in subdirs.items():
        entries[d] = ("40000", tree_of(sub, os.path.join(base, d)))
    # git orders entries by name, a directory's name taken with a trailing '/'.
    key = lambda n: n.encode() + (b"/" if entries[n][0] == "40000" else b"")
    body = b"".join(b"%s %s\0" % (entries[n][0].encode(), n.encode()) + entries[n][1]
                    for n in sorted(entries, key=key))
    return git_object(b"tree", body)


def ignore_patterns(repo):
    pats = ["__pycache__", "*.tmp", "*.pyc"]
    try:
        with open(os.path.join(repo, ".gitignore")) as f:
            pats += [l.strip().strip("/") for l in f if l.strip() and not l.startswith("#")]
    except OSError:
        pass
    return pats


def files_under(repo, path, use_git):
    """Files of the working tree under path (tracked, or untracked and not ignored)."""
    if use_git:
        out = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", path)
        names = sorted({n for n in out.split("\0") if n})
        return [n for n in names if os.path.lexists(os.path.join(repo, n))]
    import fnmatch
    pats = ignore_patterns(repo)
    full = os.path.join(repo, path)
    if os.path.isfile(full) or os.path.islink(full):
        return [path]
    found = []
    for d, dirs, files in os.walk(full):
        dirs[:] = [x for x in dirs if not any(fnmatch.fnmatch(x, p) for p in pats)]
        for x in files:
            if not any(fnmatch.fnmatch(x, p) for p in pats):
                found.append(os.path.relpath(os.path.join(d, x), repo).replace(os.sep, "/"))
    return sorted(found)


def source_hashes(repo):
    """{path: git id} of the GPU paths as they are in the working tree (a tree id for a folder,
    a blob id for a file, null when absent). Equal to `git rev-parse HEAD:PATH` when clean."""
    use_git = in_git_repo(repo)
    out = {}
    for p in GPU_PATHS:
        full = os.path.join(repo, p)
        if os.path.isdir(full) and not os.path.islink(full):
            files = files_under(repo, p, use_git)
            rel = [f[len(p) + 1:] for f in files]
            out[p] = tree_of(rel, full).hex() if rel else None
        elif os.path.lexists(full):
            out[p] = blob_of(full)[1].hex()
        else:
            out[p] = None
    return out, use_git


def cuda_sources(repo, commit=None):
    hashes, use_git = source_hashes(repo)
    dirty = None
    if use_git:
        base = commit or "HEAD"
        dirty = any(hashes[p] != rev_parse(repo, f"{base}:{p}") for p in GPU_PATHS)
    return {**hashes, "dirty": dirty}


def rev_parse(repo, spec):
    out = git(repo, "rev-parse", "--verify", "-q", spec, check=False)
    return out.strip() if out else None


# --- reading what gpu-check left --------------------------------------------------------------

def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def test_counts(path):
    """{passed, failed, skipped, failures} from a JUnit XML file as ctest --output-junit writes
    it (one testsuite, testcase status run|fail|notrun|disabled; crashes and timeouts are
    'fail') or from GoogleTest's --gtest_output=xml (testsuites of testcases with status
    run|notrun, result completed|skipped|suppressed, <failure> children). Nulls when the file
    is absent or unreadable."""
    none = {"passed": None, "failed": None, "skipped": None, "failures": None}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return none
    passed = failed = skipped = 0
    failures = []
    for case in root.iter("testcase"):
        name, cls = case.get("name", ""), case.get("classname", "")
        # GoogleTest names a case by its suite (classname) and name; ctest by the full name.
        full = name if not cls or cls == name or name.startswith(cls + ".") else f"{cls}.{name}"
        status, result = case.get("status", "run"), case.get("result", "")
        if case.find("failure") is not None or case.find("error") is not None or status == "fail":
            failed += 1
            failures.append(full)
        elif (status in ("notrun", "disabled") or result in ("skipped", "suppressed")
              or case.find("skipped") is not None):
            skipped += 1
        else:
            passed += 1
    return {"passed": passed, "failed": failed, "skipped": skipped, "failures": failures}


def sanitizer_count(text):
    """Errors (memcheck, synccheck) or hazards (racecheck) from compute-sanitizer's closing
    summary, the last one in the log; None when the log has none (the tool did not finish)."""
    if text is None:
        return None
    race = re.findall(r"RACECHECK SUMMARY: (\d+) hazards? displayed", text)
    if race:
        return int(race[-1])
    errs = re.findall(r"ERROR SUMMARY: (\d+) errors?", text)
    return int(errs[-1]) if errs else None


def number(x, digits=None):
    """x when it is a finite number (rounded to digits), else None."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return round(x, digits) if digits is not None and isinstance(x, float) else x


def read_steps(out):
    steps = []
    for line in (read_text(os.path.join(out, "steps.tsv")) or "").splitlines():
        parts = line.split("\t")
        if len(parts) == 3:
            secs = int(parts[2]) if parts[2].isdigit() else None
            steps.append({"name": parts[0], "result": parts[1], "seconds": secs})
    return steps


def read_machine(out):
    card = driver = cap = None
    csv = (read_text(os.path.join(out, "nvidia-smi.csv")) or "").strip().splitlines()
    if csv:
        fields = [f.strip() for f in csv[0].split(",")]
        if len(fields) >= 3 and fields[0]:
            card, driver, cap = fields[0], fields[1] or None, fields[2] or None
    dev = read_json(os.path.join(out, "devices.json")) or {}
    known = lambda v: v if isinstance(v, str) and v and v != "unknown" else None
    devices = dev.get("devices") or []
    if card is None and devices:
        card = devices[0].get("name")
        cap = cap or devices[0].get("compute_capability")
    cuda = known(dev.get("runtime_version"))
    if cuda is None:
        m = re.search(r"release (\d+\.\d+)", read_text(os.path.join(out, "machine.log")) or "")
        cuda = m.group(1) if m else None
    return {"card": card, "compute_capability": cap, "driver": driver, "cuda": cuda,
            "cudnn": known(dev.get("cudnn_version")), "cublas": known(dev.get("cublas_version"))}


def read_train(out):
    runs = []
    for step, model, engine in TRAIN_RUNS:
        r = read_json(os.path.join(out, step + ".json")) or {}
        runs.append({"model": model, "engine": engine,
                     "seconds": number(r.get("train_seconds"), 3),
                     "images_per_second": number(r.get("images_per_second"), 1),
                     "test_accuracy": number(r.get("test_accuracy"), 4),
                     "epochs": len(r["epochs"]) if isinstance(r.get("epochs"), list) else None,
                     "conv_impl": r.get("conv_impl")})
    return runs


# gpu-check's time-to-accuracy steps (issue: the fast-mnist recipe): (report, who, engine).
TARGET_RUNS = [("target-fused.json", "splitconv", "cuda-fused"),
               ("target-graph.json", "splitconv", "cuda-graph")]


def read_time_to_accuracy(out):
    """The recipe's time to its target: splitconv per engine, and the PyTorch peer's summary."""
    runs = []
    for name, who, engine in TARGET_RUNS:
        r = read_json(os.path.join(out, name)) or {}
        t = r.get("target") or {}
        runs.append({"who": who, "engine": engine, "reached": t.get("reached"),
                     "time_to_target_seconds": number(t.get("time_to_target_seconds"), 4),
                     "steps_to_target": t.get("steps_to_target"),
                     "test_accuracy": number(t.get("test_accuracy"), 4),
                     "setup_seconds": number(r.get("setup_seconds"), 3)})
    peer = read_json(os.path.join(out, "target-pytorch.json")) or {}
    for s in peer.get("summary") or []:
        if not s:
            continue
        tt = s.get("time_to_target") or {}
        acc = s.get("accuracy") or {}
        runs.append({"who": "pytorch", "engine": s.get("mode"),
                     "reached": s.get("reached"), "seeds": s.get("seeds"),
                     "time_to_target_seconds": number(tt.get("mean"), 4),
                     "steps_to_target": None,
                     "test_accuracy": number(acc.get("mean"), 4), "setup_seconds": None})
    return runs


def read_deterministic(out):
    text = read_text(os.path.join(out, "train-deterministic.log"))
    res = {}
    for v in ("v0", "v1"):
        if text is None:
            res["seed-" + v] = None
        elif f"seed-{v}: the two deterministic runs wrote identical checkpoints" in text:
            res["seed-" + v] = True
        elif re.search(rf"det-{v}-a\.safetensors .*differ", text):
            res["seed-" + v] = False
        else:
            res["seed-" + v] = None
    return res


def read_peer(out, models, modes):
    rep = read_json(os.path.join(out, "pytorch-peer.json")) or {}
    runs = rep.get("runs") if isinstance(rep.get("runs"), list) else []
    seen = {}
    for r in runs:
        if isinstance(r, dict):
            seen[(r.get("model"), r.get("mode"))] = r
    keys = [("seed-" + m, mode) for m in models for mode in modes]
    keys += [k for k in seen if k not in keys]
    peer = []
    for model, mode in keys:
        r = seen.get((model, mode), {})
        notes = [r.get(k) for k in ("error", "skipped") if isinstance(r.get(k), str)]
        notes += [n for n in r.get("notes") or [] if isinstance(n, str)]
        peer.append({"model": model, "mode": mode, "seconds": number(r.get("train_seconds"), 3),
                     "images_per_second": number(r.get("images_per_second"), 1),
                     "test_accuracy": number(r.get("test_accuracy"), 4),
                     "adam": r.get("adam") if isinstance(r.get("adam"), str) else None,
                     "note": "; ".join(notes) or None})
    fastest = []
    for model in dict.fromkeys(m for m, _ in keys):
        timed = [p for p in peer if p["model"] == model and p["seconds"] is not None]
        if timed:
            best = min(timed, key=lambda p: p["seconds"])
            fastest.append({k: best[k] for k in ("model", "mode", "seconds", "images_per_second")})
    torch = rep.get("torch") or next((r.get("torch") for r in runs if isinstance(r, dict)), None)
    return peer, fastest, torch


def build_record(out, args, repo):
    commit = args.get("commit")
    if in_git_repo(repo):
        commit = rev_parse(repo, "HEAD") or commit
    models = [m for m in args.get("peer_models", "").split(",") if m]
    modes = [m for m in args.get("peer_modes", "").split(",") if m]
    machine = read_machine(out)
    if machine["cudnn"] is None:
        machine["cudnn"] = args.get("cudnn_header") or None
    train = read_train(out)
    peer, fastest, torch = read_peer(out, models, modes)
    for t in train:
        best = next((f for f in fastest if f["model"] == t["model"]), None)
        t["speedup_vs_fastest_peer"] = (
            round(best["seconds"] / t["seconds"], 3)
            if best and t["seconds"] and best["seconds"] else None)
    started = args.get("started") or datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    try:
        sources = cuda_sources(repo, commit if in_git_repo(repo) else None)
    except (OSError, RuntimeError) as e:
        sources = {p: None for p in GPU_PATHS}
        sources.update(dirty=None, error=str(e))
    sanitizer = {key: sanitizer_count(read_text(os.path.join(out, log + ".log")))
                 for key, log in SANITIZER_LOGS}
    return {
        "format": FORMAT,
        "date": started,
        "commit": commit,
        "rehearsal": bool(args.get("rehearsal")),
        **machine,
        "cuda_sources": sources,
        "tests": test_counts(os.path.join(out, "gpu-tests.xml")),
        "cpu_tests": test_counts(os.path.join(out, "cpu-tests.xml")),
        "sanitizer": sanitizer,
        "train": train,
        "deterministic": read_deterministic(out),
        "time_to_accuracy": read_time_to_accuracy(out),
        "peer": peer,
        "peer_fastest": fastest,
        "peer_torch": torch,
        "steps": read_steps(out),
        "budget_seconds": number(args.get("budget")),
        "total_seconds": number(args.get("seconds")),
    }


def record_name(rec):
    date = (rec.get("date") or "unknown-date")[:10]
    commit = (rec.get("commit") or "unknown")[:12]
    return ("rehearsal-" if rec.get("rehearsal") else "") + f"{date}-{commit}.json"


def write_record(out, args, repo):
    rec = build_record(out, args, repo)
    path = os.path.join(out, record_name(rec))
    with open(path + ".tmp", "w") as f:
        json.dump(rec, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(path + ".tmp", path)
    with open(path) as f:
        json.load(f)  # what was written reads back
    print(path)


# --- status: what changed since the last GPU run ---------------------------------------------

def load_records(records_dir):
    recs, bad = [], []
    try:
        names = sorted(n for n in os.listdir(records_dir) if n.endswith(".json"))
    except OSError:
        names = []
    for n in names:
        r = read_json(os.path.join(records_dir, n))
        if not isinstance(r, dict):
            bad.append(n)
        elif not r.get("rehearsal"):
            r["_file"] = n
            recs.append(r)
    recs.sort(key=lambda r: (r.get("date") or "", r["_file"]))
    return recs, bad


def is_clean(r):
    t, s = r.get("tests") or {}, r.get("sanitizer") or {}
    return (t.get("failed") == 0 and (t.get("passed") or 0) > 0 and
            all(s.get(k) == 0 for k in ("memcheck_errors", "racecheck_hazards", "synccheck_errors")))


def describe(r):
    t, s = r.get("tests") or {}, r.get("sanitizer") or {}
    show = lambda v: "?" if v is None else str(v)
    tests = ("tests did not run" if t.get("passed") is None else
             f"{t['passed']} passed, {show(t.get('failed'))} failed, {show(t.get('skipped'))} skipped")
    san = ", ".join(f"{k} {show(s.get(key))}" for key, k in
                    (("memcheck_errors", "memcheck"), ("racecheck_hazards", "racecheck"),
                     ("synccheck_errors", "synccheck")))
    return (f"{(r.get('date') or '?')[:10]}  {(r.get('commit') or 'unknown')[:12]}  "
            f"{r.get('card') or 'unknown card'}  {tests}  sanitizer: {san}")


def changes_since(repo, rec, paths):
    """Lines saying how paths differ between the record's run and HEAD."""
    commit = rec.get("commit")
    src = rec.get("cuda_sources") or {}
    have_commit = bool(commit) and git(repo, "cat-file", "-e", f"{commit}^{{commit}}",
                                       check=False) is not None
    dirty = src.get("dirty")
    if have_commit and dirty is None and src:
        # Recorded from a tree without .git: whether it was the commit's, from the ids.
        dirty = any(src.get(p) != rev_parse(repo, f"{commit}:{p}") for p in paths)
    if have_commit and not dirty:
        stat = git(repo, "diff", "--stat", f"{commit}..HEAD", "--", *paths)
        return [f"git diff --stat {commit[:12]}..HEAD -- {' '.join(paths)}"] + (
            stat.rstrip("\n").splitlines() if stat.strip() else ["  (no change)"])
    # The run's sources were not a commit's (uncommitted changes, or the commit is not here):
    # compare the recorded trees with HEAD's, path by path.
    lines = ["the run's GPU sources were " + (
        "uncommitted changes on " + commit[:12] if have_commit
        else f"at commit {commit[:12]}, which this repository lacks" if commit
        else "of an unknown commit") + "; the recorded trees against HEAD's:"]
    for p in paths:
        rec_id, head_id = src.get(p), rev_parse(repo, f"HEAD:{p}")
        if rec_id == head_id:
            lines.append(f"  {p}: unchanged")
        elif rec_id and head_id and git(repo, "cat-file", "-e", rec_id, check=False) is not None:
            num = git(repo, "diff", "--numstat", rec_id, head_id) or ""
            lines.append(f"  {p}: changed")
            for l in num.splitlines():
                a, d, name = l.split("\t", 2)
                # Two trees give names inside the folder; two blobs, the blob ids.
                full = f"{p}/{name}" if rev_parse(repo, f"HEAD:{p}/{name}") else p
                lines.append(f"    {full} | +{a} -{d}")
        else:
            lines.append(f"  {p}: changed (the recorded version is not in this repository)")
    return lines


def status(repo, records_dir):
    if not in_git_repo(repo):
        raise UsageError(f"{repo} is not a git repository")
    recs, bad = load_records(records_dir)
    rel = os.path.relpath(records_dir, repo)
    for n in bad:
        print(f"gpu-status: {rel}/{n} is not a record (not a JSON object); left out")
    if not recs:
        print(f"no GPU run recorded (no record in {rel}/)")
        print("so no GPU code is known to have run on a GPU; verify all of it: " + " ".join(GPU_PATHS))
        return 0
    print(f"GPU runs recorded in {rel}/ ({len(recs)}, latest last):")
    for r in recs:
        print("  " + describe(r) + f"  [{r['_file']}]")
    last = recs[-1]
    print(f"\nlast GPU run: {rel}/{last['_file']}")
    t = last.get("tests") or {}
    if t.get("failures") is None:
        print("its GPU tests did not run (no test results in the record)")
    elif t["failures"]:
        print(f"failed GPU tests in it ({len(t['failures'])}):")
        for f in t["failures"]:
            print("  " + f)
    else:
        print("failed GPU tests in it: none")
    san = last.get("sanitizer") or {}
    dirty_san = [k for k in ("memcheck_errors", "racecheck_hazards", "synccheck_errors")
                 if san.get(k) != 0]
    if dirty_san:
        print("sanitizer not clean or not run: " +
              ", ".join(f"{k} {'not run' if san.get(k) is None else san[k]}" for k in dirty_san))
    print("\nGPU code changed since the last GPU run:")
    for l in changes_since(repo, last, GPU_PATHS):
        print("  " + l)
    unstaged = git(repo, "status", "--porcelain", "--", *GPU_PATHS, check=False) or ""
    if unstaged.strip():
        print("  uncommitted now:")
        for l in unstaged.rstrip("\n").splitlines():
            print("    " + l)
    commit = last.get("commit")
    if commit and git(repo, "cat-file", "-e", f"{commit}^{{commit}}", check=False) is not None:
        linked = git(repo, "diff", "--stat", f"{commit}..HEAD", "--", *LINKED_PATHS) or ""
        if linked.strip():
            print(f"\nalso changed since it, linked into the CUDA build ({' '.join(LINKED_PATHS)}):")
            for l in linked.rstrip("\n").splitlines():
                print("  " + l)
    clean = [r for r in recs if is_clean(r)]
    print("\nlast clean GPU run (0 failed tests, sanitizers clean): " +
          (describe(clean[-1]) if clean else "none recorded"))
    return 0


# --- command line ------------------------------------------------------------------------------

def parse(argv, spec):
    """argv → dict; spec maps an option to its key, and to None for a flag. One positional
    (OUTDIR) where spec has the key '' ."""
    res, pos = {}, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            if name not in spec:
                raise UsageError(f"unknown option {name}")
            key, takes = spec[name]
            if takes:
                if not eq:
                    if i + 1 >= len(argv):
                        raise UsageError(f"{name} needs a value")
                    i += 1
                    val = argv[i]
                res[key] = val
            elif eq:
                raise UsageError(f"{name} takes no value")
            else:
                res[key] = True
        else:
            pos.append(a)
        i += 1
    return res, pos


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    default_repo = os.path.dirname(here)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    cmd, rest = argv[0], argv[1:]
    if "-h" in rest or "--help" in rest:
        print(__doc__.strip())
        return 0
    try:
        if cmd == "write":
            opts, pos = parse(rest, {
                "--rehearsal": ("rehearsal", False), "--started": ("started", True),
                "--seconds": ("seconds", True), "--budget": ("budget", True),
                "--commit": ("commit", True), "--peer-models": ("peer_models", True),
                "--peer-modes": ("peer_modes", True), "--cudnn-header": ("cudnn_header", True),
                "--repo": ("repo", True)})
            if len(pos) != 1:
                raise UsageError("write takes one OUTDIR")
            for k in ("seconds", "budget"):
                if k in opts:
                    if not opts[k].isdigit():
                        raise UsageError(f"--{k} takes whole seconds, not '{opts[k]}'")
                    opts[k] = int(opts[k])
            write_record(pos[0], opts, os.path.abspath(opts.get("repo", default_repo)))
        elif cmd == "status":
            opts, pos = parse(rest, {"--repo": ("repo", True), "--records": ("records", True)})
            if pos:
                raise UsageError(f"unexpected argument '{pos[0]}'")
            repo = os.path.abspath(opts.get("repo", default_repo))
            return status(repo, os.path.abspath(opts.get("records", os.path.join(repo, "docs/gpu"))))
        elif cmd == "sources":
            opts, pos = parse(rest, {"--repo": ("repo", True)})
            if pos:
                raise UsageError(f"unexpected argument '{pos[0]}'")
            print(json.dumps(cuda_sources(os.path.abspath(opts.get("repo", default_repo))), indent=2))
        else:
            raise UsageError(f"unknown command '{cmd}' (write, status, sources)")
    except UsageError as e:
        print(f"{os.environ.get('GPU_RECORD_PROG', 'gpu_record')}: {e}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        print(f"{os.environ.get('GPU_RECORD_PROG', 'gpu_record')}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
