#!/usr/bin/env python3
"""tools/svd-summary.py on reports written here: seed 0 in OUT and seed 1 in OUT/seed1 give
each cell's mean ± sample standard deviation and min–max; one seed gives the value alone."""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "tools", "svd-summary.py")
NAMES = ["v0.train.json", "v0-more.ft.json", "v1.train.json"] + [
    f"v0-conv3-k{k}-{mid}.{kind}.json" for k in (64, 32, 16) for mid in ("none", "relu")
    for kind in ("eval", "ft")]


def write(directory, accuracy):
    os.makedirs(directory, exist_ok=True)
    for name in NAMES:
        with open(os.path.join(directory, name), "w") as f:
            json.dump({"test_accuracy": accuracy}, f)


def run(out):
    return subprocess.run([sys.executable, TOOL, out], capture_output=True, text=True)


def main():
    failures = 0
    with tempfile.TemporaryDirectory() as out:
        write(out, 0.99)
        r = run(out)
        if r.returncode != 0 or "| split | none | 64 | 0.9900 | 0.9900 |" not in r.stdout:
            print(f"FAIL: one seed: rc {r.returncode}\n{r.stdout}{r.stderr}")
            failures += 1
        write(os.path.join(out, "seed1"), 0.98)
        r = run(out)
        # mean 0.985, sample std of (0.99, 0.98) = 0.00707
        want = "| split | relu | 16 | 0.9850 ± 0.0071 (0.9800–0.9900) |"
        if r.returncode != 0 or want not in r.stdout or "seeds: 0, 1 (2)" not in r.stdout:
            print(f"FAIL: two seeds: rc {r.returncode}\n{r.stdout}{r.stderr}")
            failures += 1
        os.remove(os.path.join(out, "seed1", "v0-more.ft.json"))
        r = run(out)
        if r.returncode != 2 or "v0-more.ft.json" not in r.stderr or r.stderr.count("\n") != 1:
            print(f"FAIL: a missing report: rc {r.returncode}\n{r.stderr}")
            failures += 1
    print("svd_summary_test:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
