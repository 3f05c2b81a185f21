#!/usr/bin/env python3
"""One conv layer shape in PyTorch, timed as `splitconv bench conv` times it on the CPU.

Two sides, each with bias and ReLU after every conv: the n×n conv (c -> m) and the pair
(n×1 with m filters, then 1×n with m). For each side: the forward, and the forward + backward
(the backward from a fixed output gradient, with the input's gradient too, as a layer with
parameters before it needs). float32, NCHW. The sides are timed in alternation, sample by
sample, after warm-up runs; the median of each is reported in milliseconds.

Prints one JSON object: {torch, threads, shape {n, c, m, h, w, batch, padding},
sides [{side, forward_ms, train_ms}]}.

usage: pytorch_conv.py [--n 3] [--c 64] [--m 64] [--size 28x28] [--batch 32]
                       [--padding valid|same] [--threads N] [--runs 7] [--warmups 2]
Needs PyTorch (Debian: python3-torch): exits 3 without it, 2 on bad usage.
"""
import argparse
import json
import statistics
import sys
import time

if any(a in ("-h", "--help") for a in sys.argv[1:]):
    print(__doc__.strip())
    sys.exit(0)


def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):  # one line, exit 2
            sys.stderr.write(f"pytorch_conv: {message}\n")
            sys.exit(2)

    p = Parser(add_help=False)
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--c", type=int, default=64)
    p.add_argument("--m", type=int, default=64)
    p.add_argument("--size", default="28x28")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--padding", choices=["valid", "same"], default="valid")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--warmups", type=int, default=2)
    a = p.parse_args(argv)
    try:
        a.h, a.w = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        p.error(f"--size '{a.size}': expected HxW")
    for name in ("n", "c", "m", "batch", "runs", "h", "w"):
        if getattr(a, name) < 1:
            p.error(f"--{name}: expected a positive number")
    if a.n < 2:
        p.error("--n: expected at least 2")
    return a


def main(argv):
    a = parse_args(argv)
    try:
        import torch
        import torch.nn as nn
    except ImportError:
        sys.stderr.write("pytorch_conv: PyTorch is missing (apt-get install python3-torch)\n")
        return 3
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    pad = "same" if a.padding == "same" else 0
    sides = {
        "nxn": nn.Sequential(nn.Conv2d(a.c, a.m, (a.n, a.n), padding=pad), nn.ReLU()),
        "pair": nn.Sequential(nn.Conv2d(a.c, a.m, (a.n, 1), padding=pad), nn.ReLU(),
                              nn.Conv2d(a.m, a.m, (1, a.n), padding=pad), nn.ReLU()),
    }
    x = torch.rand(a.batch, a.c, a.h, a.w, requires_grad=True)
    dys = {k: torch.rand_like(s(x)) for k, s in sides.items()}

    def forward(k):
        with torch.no_grad():
            sides[k](x)

    def train(k):
        x.grad = None
        sides[k].zero_grad(set_to_none=True)
        sides[k](x).backward(dys[k])

    times = {k: {"forward": [], "train": []} for k in sides}
    for what, fn in (("forward", forward), ("train", train)):
        for k in sides:
            for _ in range(a.warmups):
                fn(k)
        for _ in range(a.runs):
            for k in sides:
                t0 = time.perf_counter()
                fn(k)
                times[k][what].append((time.perf_counter() - t0) * 1e3)
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": {"n": a.n, "c": a.c, "m": a.m, "h": a.h, "w": a.w, "batch": a.batch,
                  "padding": a.padding},
        "sides": [{"side": k, "forward_ms": statistics.median(v["forward"]),
                   "train_ms": statistics.median(v["train"])} for k, v in times.items()],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
