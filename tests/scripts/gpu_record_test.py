#!/usr/bin/env python3
"""tools/gpu_record.py, the record of a GPU run, on output folders made here: a full run, a run
cut short before any step, both test XML formats, sanitizer summaries, and the source hashes
with and without git."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORD_PY = os.path.join(ROOT, "tools", "gpu_record.py")
spec = importlib.util.spec_from_file_location("gpu_record", RECORD_PY)
gr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gr)

CTEST_JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="(empty)" tests="6" failures="3" disabled="1" skipped="1" time="1">
  <testcase name="GpuOps.Relu" classname="GpuOps.Relu" time="0.02" status="run"/>
  <testcase name="Seed/SeedModels.FiftyStepsMatchCpu/seed_v1" classname="Seed/SeedModels.FiftyStepsMatchCpu/seed_v1" status="fail">
    <failure message=""/><system-out>conv2.weight off by 1.26e-4</system-out></testcase>
  <testcase name="BenchCuda.Conv" classname="BenchCuda.Conv" status="notrun">
    <skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/></testcase>
  <testcase name="CudaSplit.Slow" classname="CudaSplit.Slow" status="fail"><failure message=""/></testcase>
  <testcase name="CudaSplit.Crash" classname="CudaSplit.Crash" status="fail"><failure message=""/></testcase>
  <testcase name="CudaSplit.DISABLED_Old" classname="CudaSplit.DISABLED_Old" status="disabled"/>
</testsuite>
"""

GTEST_XML = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" failures="1" disabled="0" errors="0" name="AllTests">
  <testsuite name="GpuOps" tests="2" failures="1">
    <testcase name="Relu" status="run" result="completed" classname="GpuOps"/>
    <testcase name="Pool" status="run" result="completed" classname="GpuOps">
      <failure message="x" type=""><![CDATA[ops_test.cpp:10 Expected equality]]></failure>
    </testcase>
  </testsuite>
  <testsuite name="Seed/SeedModels" tests="2">
    <testcase name="FiftyStepsMatchCpu/seed_v0" status="run" result="completed" classname="Seed/SeedModels"/>
    <testcase name="FiftyStepsMatchCpu/seed_v1" status="run" result="skipped" classname="Seed/SeedModels">
      <skipped message="no device"/></testcase>
  </testsuite>
</testsuites>
"""

REQUIRED = {"commit", "card", "driver", "cuda", "cudnn", "tests", "sanitizer", "train", "peer",
            "cuda_sources"}


def strict_load(path):
    def no_constant(c):
        raise ValueError(f"{c} is not JSON")
    with open(path) as f:
        return json.load(f, parse_constant=no_constant)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def run_writer(out, *args):
    r = subprocess.run([sys.executable, RECORD_PY, "write", out, "--repo", ROOT, *args],
                       capture_output=True, text=True)
    return r


class RecordTest(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="gpu-record-test.")
        self.addCleanup(shutil.rmtree, self.out)

    def test_full_run(self):
        o = self.out
        write(f"{o}/steps.tsv", "build\tok\t200\ngpu-tests\tok\t90\nsynccheck\tTIMEOUT after 100s\t100\n")
        write(f"{o}/nvidia-smi.csv", "NVIDIA H200, 580.159.04, 9.0\n")
        write(f"{o}/devices.json", json.dumps({"runtime_version": "13.0", "cudnn_version": "9.19.0",
                                               "cublas_version": "13.1.0", "devices": []}))
        write(f"{o}/gpu-tests.xml", CTEST_JUNIT)
        write(f"{o}/memcheck.log", "========= ERROR SUMMARY: 0 errors\n")
        write(f"{o}/racecheck.log", "========= RACECHECK SUMMARY: 2 hazards displayed (0 errors, 2 warnings)\n")
        write(f"{o}/synccheck.log", "[ RUN      ] GpuOps.Relu\n")  # killed before its summary
        write(f"{o}/memcheck-backend.log", "x\n========= ERROR SUMMARY: 1 error\n")
        write(f"{o}/train-v0.json", json.dumps({
            "train_seconds": 2.5, "images_per_second": 120000.0, "test_accuracy": 0.9891,
            "epochs": [{}] * 5, "conv_impl": ["conv1: cudnn"]}))
        write(f"{o}/train-v1.json", json.dumps({
            "train_seconds": 2.8, "images_per_second": 107000.0, "test_accuracy": 0.9885,
            "epochs": [{}] * 5}))
        write(f"{o}/train-deterministic.log",
              "seed-v0: the two deterministic runs wrote identical checkpoints\n"
              "/o/det-v1-a.safetensors /o/det-v1-b.safetensors differ: byte 99, line 1\n")
        # Python's json writes NaN where a run produced one; the record must not.
        write(f"{o}/pytorch-peer.json", """{"torch": "2.11.0", "runs": [
          {"model": "seed-v0", "mode": "graph", "train_seconds": 3.5, "images_per_second": 85000.0,
           "test_accuracy": 0.99, "adam": "fused"},
          {"model": "seed-v0", "mode": "compile-max-autotune", "train_seconds": 3.0,
           "images_per_second": 99000.0, "test_accuracy": 0.99, "adam": "fused",
           "notes": ["a note"]},
          {"model": "seed-v1", "mode": "graph", "train_seconds": NaN, "images_per_second": NaN},
          {"model": "seed-v1", "mode": "compile-max-autotune", "error": "RuntimeError: boom"}]}""")
        r = run_writer(o, "--started", "2025-03-04T05:06:07Z", "--seconds", "440", "--budget",
                       "450", "--peer-models", "v0,v1", "--peer-modes", "graph,compile-max-autotune,eager")
        self.assertEqual(r.returncode, 0, r.stderr)
        path = r.stdout.strip()
        name = os.path.basename(path)
        self.assertTrue(name.startswith("2025-03-04-"), name)
        rec = strict_load(path)
        self.assertLessEqual(REQUIRED, set(rec))
        self.assertEqual(rec["card"], "NVIDIA H200")
        self.assertEqual(rec["driver"], "580.159.04")
        self.assertEqual(rec["compute_capability"], "9.0")
        self.assertEqual(rec["cuda"], "13.0")
        self.assertEqual(rec["cudnn"], "9.19.0")
        self.assertFalse(rec["rehearsal"])
        self.assertEqual(rec["tests"], {
            "passed": 1, "failed": 3, "skipped": 2,
            "failures": ["Seed/SeedModels.FiftyStepsMatchCpu/seed_v1", "CudaSplit.Slow",
                         "CudaSplit.Crash"]})
        self.assertEqual(rec["cpu_tests"]["passed"], None)
        self.assertEqual(rec["sanitizer"], {"memcheck_errors": 0, "racecheck_hazards": 2,
                                            "synccheck_errors": None, "memcheck_backend_errors": 1})
        train = {(t["model"], t["engine"]): t for t in rec["train"]}
        self.assertEqual(set(train), {("seed-v0", "cuda-auto"), ("seed-v1", "cuda-auto"),
                                      ("seed-v1", "cuda-own"), ("seed-v0", "cuda-fused"),
                                      ("seed-v1", "cuda-fused"), ("seed-v0", "cuda-fused-block"),
                                      ("seed-v0", "cuda-fused-block-launch-per-step")})
        self.assertEqual(train["seed-v0", "cuda-auto"]["seconds"], 2.5)
        self.assertEqual(train["seed-v0", "cuda-auto"]["epochs"], 5)
        self.assertEqual(train["seed-v0", "cuda-auto"]["speedup_vs_fastest_peer"], 1.2)
        self.assertIsNone(train["seed-v1", "cuda-own"]["seconds"])  # no report: null
        self.assertIsNone(train["seed-v1", "cuda-auto"]["speedup_vs_fastest_peer"])
        self.assertEqual(rec["deterministic"], {"seed-v0": True, "seed-v1": False})
        peer = {(p["model"], p["mode"]): p for p in rec["peer"]}
        self.assertEqual(len(peer), 6)  # every model and mode asked for
        self.assertEqual(peer["seed-v0", "graph"]["seconds"], 3.5)
        self.assertIsNone(peer["seed-v1", "graph"]["seconds"])  # NaN became null
        self.assertEqual(peer["seed-v1", "compile-max-autotune"]["note"], "RuntimeError: boom")
        self.assertEqual(peer["seed-v0", "compile-max-autotune"]["note"], "a note")
        self.assertIsNone(peer["seed-v0", "eager"]["seconds"])  # never ran
        self.assertEqual(rec["peer_fastest"], [{"model": "seed-v0", "mode": "compile-max-autotune",
                                                "seconds": 3.0, "images_per_second": 99000.0}])
        self.assertEqual(rec["peer_torch"], "2.11.0")
        self.assertEqual([s["name"] for s in rec["steps"]], ["build", "gpu-tests", "synccheck"])
        self.assertEqual(rec["steps"][2]["result"], "TIMEOUT after 100s")
        self.assertEqual((rec["budget_seconds"], rec["total_seconds"]), (450, 440))

    def test_run_cut_short_before_any_step(self):
        r = run_writer(self.out, "--rehearsal", "--peer-models", "v0,v1", "--peer-modes", "graph")
        self.assertEqual(r.returncode, 0, r.stderr)
        path = r.stdout.strip()
        self.assertTrue(os.path.basename(path).startswith("rehearsal-"))
        rec = strict_load(path)
        self.assertLessEqual(REQUIRED, set(rec))
        self.assertTrue(rec["rehearsal"])
        for key in ("card", "driver"):
            self.assertIsNone(rec[key])
        self.assertEqual(rec["tests"], {"passed": None, "failed": None, "skipped": None,
                                        "failures": None})
        self.assertEqual(set(rec["sanitizer"].values()), {None})
        self.assertEqual(len(rec["train"]), 7)
        for t in rec["train"]:
            self.assertEqual(set(t) >= {"model", "engine", "seconds", "images_per_second",
                                        "test_accuracy"}, True)
            self.assertIsNone(t["seconds"])
        self.assertEqual([(p["model"], p["mode"], p["seconds"]) for p in rec["peer"]],
                         [("seed-v0", "graph", None), ("seed-v1", "graph", None)])
        self.assertEqual(rec["steps"], [])

    def test_gtest_xml(self):
        path = os.path.join(self.out, "gtest.xml")
        write(path, GTEST_XML)
        self.assertEqual(gr.test_counts(path), {
            "passed": 2, "failed": 1, "skipped": 1, "failures": ["GpuOps.Pool"]})
        write(path, "<testsuites><testsuite")  # cut off mid-write
        self.assertEqual(gr.test_counts(path)["passed"], None)

    def test_sanitizer_summaries(self):
        self.assertEqual(gr.sanitizer_count("========= ERROR SUMMARY: 3 errors\n"), 3)
        self.assertEqual(gr.sanitizer_count("a\n========= ERROR SUMMARY: 0 errors\n"
                                            "========= ERROR SUMMARY: 1 error\n"), 1)
        self.assertEqual(gr.sanitizer_count(
            "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n"), 0)
        self.assertIsNone(gr.sanitizer_count("[ RUN      ] X.Y\n"))
        self.assertIsNone(gr.sanitizer_count(None))

    def test_bad_arguments(self):
        for args in (["write", self.out, "--bogus"], ["write"], ["write", self.out, "--seconds", "x"],
                     ["status", "extra"], ["nonsense"]):
            r = subprocess.run([sys.executable, RECORD_PY, *args], capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, (args, r.stderr))


class SourceHashTest(unittest.TestCase):
    """The hashes of the GPU sources equal git's tree and blob ids, with and without .git."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="gpu-record-src.")
        self.addCleanup(shutil.rmtree, self.dir)

    def git(self, repo, *args):
        return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def test_equal_to_git(self):
        repo = os.path.join(self.dir, "repo")
        for f, text in {"cuda/a.cu": "a", "cuda/bench/b.cpp": "b", "cuda/z-.h": "z",
                        "cuda/bench.h": "c", "include/splitconv/x.h": "x",
                        "tests/gpu/t_test.cpp": "t", "host/fused/block_ops.h": "o",
                        "host/backend_factory.cpp": "f",
                        "host/bench/dispatch.cpp": "d", ".gitignore": "*.tmp\n"}.items():
            os.makedirs(os.path.dirname(os.path.join(repo, f)), exist_ok=True)
            write(os.path.join(repo, f), text)
        os.chmod(os.path.join(repo, "cuda/a.cu"), 0o755)
        os.symlink("a.cu", os.path.join(repo, "cuda/link.cu"))
        subprocess.run(["git", "init", "-q", repo], check=True)
        self.git(repo, "add", "-A")
        self.git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "x")
        write(os.path.join(repo, "cuda/ignored.tmp"), "not part of the tree")
        src = gr.cuda_sources(repo)
        for p in gr.GPU_PATHS:
            self.assertEqual(src[p], self.git(repo, "rev-parse", f"HEAD:{p}"), p)
        self.assertIs(src["dirty"], False)
        # The same files without .git (a copy of the tree): the same ids, dirtiness unknown.
        copy = os.path.join(self.dir, "copy")
        shutil.copytree(repo, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        plain = gr.cuda_sources(copy)
        self.assertEqual({p: plain[p] for p in gr.GPU_PATHS}, {p: src[p] for p in gr.GPU_PATHS})
        self.assertIsNone(plain["dirty"])
        # An uncommitted change, and an untracked file, make it dirty.
        write(os.path.join(repo, "tests/gpu/new_test.cpp"), "n")
        self.assertIs(gr.cuda_sources(repo)["dirty"], True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
