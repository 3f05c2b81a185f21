#!/usr/bin/env python3
"""The seed part of tools/svd-experiment.sh across its seeds, as a Markdown table.

usage: tools/svd-summary.py OUT

OUT is the experiment's output directory: seed 0's reports in OUT, seed S's in OUT/seedS.
For seed-v0 (the control: unsplit, and one more epoch of it), each split of conv3 (rank K,
nothing or a ReLU between the pair: right after the split and after one epoch of
fine-tuning) and seed-v1 trained from scratch, the table gives the test accuracy over the
seeds found: mean ± sample standard deviation, then min–max. Exits 2 on bad input (no
seeds found, a report missing or unreadable).
"""
import json
import os
import statistics
import sys

RANKS = (64, 32, 16)
MIDS = ("none", "relu")


def fail(message):
    print(f"svd-summary: {message}", file=sys.stderr)
    sys.exit(2)


def seed_dirs(out):
    dirs = {}
    if os.path.isfile(os.path.join(out, "v0.train.json")):
        dirs[0] = out
    if os.path.isdir(out):
        for name in sorted(os.listdir(out)):
            path = os.path.join(out, name)
            if name.startswith("seed") and name[4:].isdigit() and os.path.isfile(
                    os.path.join(path, "v0.train.json")):
                dirs[int(name[4:])] = path
    if not dirs:
        fail(f"{out}: no seed's reports (v0.train.json) in it or in its seedS directories")
    return dict(sorted(dirs.items()))


def accuracy(path):
    try:
        with open(path) as f:
            return float(json.load(f)["test_accuracy"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        fail(f"{path}: {e}")


def cell(values):
    if len(values) == 1:
        return f"{values[0]:.4f}"
    mean, std = statistics.mean(values), statistics.stdev(values)
    return f"{mean:.4f} ± {std:.4f} ({min(values):.4f}–{max(values):.4f})"


def main(argv):
    if len(argv) == 1 and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) != 1 or argv[0].startswith("-"):
        fail(f"one argument, the output directory, expected; got {' '.join(argv) or 'none'} "
             "(usage: tools/svd-summary.py OUT)")
    dirs = seed_dirs(argv[0])
    seeds = ", ".join(str(s) for s in dirs)

    def over(name):
        return [accuracy(os.path.join(d, name)) for d in dirs.values()]

    print(f"seeds: {seeds} ({len(dirs)})\n")
    print("| model | mid | K | right after the split | after 1 epoch fine-tune |")
    print("|---|---|---|---|---|")
    print(f"| seed-v0, unsplit (control) | | | {cell(over('v0.train.json'))} | "
          f"{cell(over('v0-more.ft.json'))} |")
    for k in RANKS:
        for mid in MIDS:
            n = f"v0-conv3-k{k}-{mid}"
            print(f"| split | {mid} | {k} | {cell(over(n + '.eval.json'))} | "
                  f"{cell(over(n + '.ft.json'))} |")
    print(f"| seed-v1 from scratch, 5 epochs | relu | 64 | | {cell(over('v1.train.json'))} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
