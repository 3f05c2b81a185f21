#!/usr/bin/env python3
"""`splitconv analyze` against torchvision itself: the five networks of
tests/fixtures/onnx/torchvision/make_graphs.py exported afresh (without weights) by the
installed torchvision, each analysed; its parameter total must equal torchvision's own count
(the sum of numel() over model.parameters()) to the unit, and equal the committed graph's.

usage: torchvision_graphs_test.py SPLITCONV_BINARY
Needs python3-torchvision; without it it says so and exits 77, which ctest reports as skipped
(the committed graphs are still checked by GraphAnalysis.* in the C++ suite).
"""
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
GRAPHS = os.path.join(HERE, "..", "fixtures", "onnx", "torchvision")

try:
    import torchvision  # noqa: F401  (make_graphs.py imports it; checked here to skip early)
except ImportError as e:
    print(f"skipped: {e.name} is not installed (Debian: python3-torchvision)")
    sys.exit(SKIP)


def analyze(binary, path, out):
    r = subprocess.run([binary, "analyze", path, "--json", out], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: analyze {path}: exit {r.returncode}: {r.stderr.strip()}")
    with open(out) as f:
        return json.load(f)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torchvision_graphs_test.py SPLITCONV_BINARY")
    binary = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="splitconv-torchvision-") as tmp:
        r = subprocess.run([sys.executable, os.path.join(GRAPHS, "make_graphs.py"), tmp, "--counts"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"FAIL: make_graphs.py: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
        counts = dict((name, int(n)) for name, n in (line.split() for line in r.stdout.splitlines()))
        if len(counts) != 5:
            sys.exit(f"FAIL: make_graphs.py gave {len(counts)} counts, not 5: {r.stdout!r}")
        for name, params in counts.items():
            fresh = analyze(binary, os.path.join(tmp, name), os.path.join(tmp, name + ".json"))
            committed = analyze(binary, os.path.join(GRAPHS, name), os.path.join(tmp, "c.json"))
            ok = fresh["total_params"] == params == committed["total_params"]
            ok = ok and fresh["total_macs"] == committed["total_macs"]
            print(f"{'ok' if ok else 'FAIL'}: {name}: torchvision {params:,} parameters; analyze "
                  f"{fresh['total_params']:,} (committed graph {committed['total_params']:,}), "
                  f"{fresh['total_macs']:,} MACs (committed {committed['total_macs']:,})")
            failures += not ok
    if failures:
        sys.exit(f"FAIL: {failures} network(s) differ")
    print("all five networks: analyze's parameter totals are torchvision's")


if __name__ == "__main__":
    main()
