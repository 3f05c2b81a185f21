#!/usr/bin/env python3
"""`splitconv analyze` against torchvision itself: the five networks of
tests/fixtures/onnx/torchvision/make_graphs.py exported afresh (without weights) by the
installed torchvision, each analysed; its parameter total must equal torchvision's own count
(the sum of numel() over model.parameters()) to the unit, and equal the committed graph's.
Then ResNet-18 exported the usual way (eval mode, with its weights, opset 11), whose batch
normalizations the exporter folds into the convs: torchvision's count less one parameter per
normalized channel, the same MACs.

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
        # The usual export, in eval mode with its weights and opset 11, folds each batch
        # normalization into the conv before it: the conv gains a bias of its channels and the
        # normalization's scale and shift (two per channel) go, MACs unchanged.
        import torch
        import warnings
        warnings.filterwarnings("ignore")
        model = torchvision.models.resnet18(weights=None).eval()
        path = os.path.join(tmp, "resnet18-eval.onnx")
        torch.onnx.export(model, torch.zeros(1, 3, 224, 224), path, opset_version=11)
        channels = sum(m.num_features for m in model.modules()
                       if isinstance(m, torch.nn.BatchNorm2d))
        expected = sum(p.numel() for p in model.parameters()) - channels
        folded = analyze(binary, path, os.path.join(tmp, "eval.json"))
        weightless = analyze(binary, os.path.join(GRAPHS, "resnet18.onnx"), os.path.join(tmp, "c.json"))
        ok = folded["total_params"] == expected and folded["total_macs"] == weightless["total_macs"]
        ok = ok and folded["has_weights"] and not any(l["op"] == "BatchNormalization" for l in folded["layers"])
        print(f"{'ok' if ok else 'FAIL'}: resnet18 exported in eval mode with its weights: "
              f"{folded['total_params']:,} parameters (torchvision's less its {channels:,} "
              f"normalized channels: {expected:,}), {folded['total_macs']:,} MACs")
        failures += not ok
    if failures:
        sys.exit(f"FAIL: {failures} check(s) differ")
    print("all five networks: analyze's parameter totals are torchvision's")


if __name__ == "__main__":
    main()
