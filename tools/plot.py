#!/usr/bin/env python3
"""Realised against theoretical savings of splitting n×n convolutions, from a sweep CSV.

usage: tools/plot.py SWEEP.csv OUT.png [--title TITLE]

SWEEP.csv is what `splitconv bench sweep --csv` writes (one row per shape and variant). For every
shape the fastest valid n×n and the fastest valid pair are taken, forward and forward + backward
apart; each shape is one point: x the theoretical saving 1 − MACs_pair/MACs_n×n, y the measured
time saving 1 − t_pair/t_n×n. On the diagonal, time shrinks exactly as MACs do; above zero the
split pays. Needs matplotlib (Debian: python3-matplotlib; tools/setup.sh --optional installs it);
exits 3 without it, 2 on bad input.
"""
import argparse
import csv
import sys

FLOOR = -1.0  # savings below −100% (the pair over twice as slow) are drawn at this edge
COLOURS = {3: "tab:blue", 5: "tab:orange", 7: "tab:green"}
MARKERS = {32: "o", 256: "^"}


def shape_points(rows, direction):
    """{shape key: (n, c, batch, theoretical, measured)} for one direction (forward | train)."""
    shapes = {}
    for r in rows:
        key = tuple(r[k] for k in ("device", "kh", "kw", "c", "m", "k", "h", "w", "batch", "padding"))
        shapes.setdefault(key, []).append(r)
    points = []
    for key, variants in shapes.items():
        def fastest(side):
            times = [float(v[direction + "_ms"]) for v in variants
                     if v["side"] == side and v["valid"] == "1" and v[direction + "_ms"]]
            return min(times) if times else None
        t_nxn, t_pair = fastest("nxn"), fastest("pair")
        if t_nxn is None or t_pair is None:
            continue
        first = variants[0]
        points.append((int(first["kh"]), int(first["c"]), int(first["batch"]),
                       float(first["theoretical_saving"]), 1.0 - t_pair / t_nxn))
    return points


def draw(ax, points, title, ylim):
    ax.axhline(0, color="grey", lw=0.8)
    ax.plot([-1.2, 1], [-1.2, 1], ls="--", color="grey", lw=0.8)
    ax.annotate("time shrinks as MACs do", (0.45, 0.45), xytext=(0.47, 0.33), color="grey",
                fontsize=8, arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
    for n, c, batch, x, y in points:
        clipped = y < FLOOR
        ax.scatter(x, max(y, FLOOR), s=14 + 0.45 * c, c=COLOURS.get(n, "k"),
                   marker="v" if clipped else MARKERS.get(batch, "s"),
                   alpha=0.75, edgecolors="black", linewidths=0.4)
    ax.set_title(title)
    ax.set_xlabel("theoretical saving: 1 − MACs pair / MACs n×n")
    xmin = min([-0.3] + [p[3] - 0.05 for p in points])
    ax.set_xlim(xmin, 0.8)
    ax.text(xmin + 0.01, 0.01, "break-even: the split pays above", color="grey", va="bottom",
            fontsize=8)
    ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"tools/plot.py: {message} (usage: tools/plot.py SWEEP.csv OUT.png "
                         "[--title TITLE]; --help)\n")
        sys.exit(2)


def main():
    parser = Parser(description=__doc__.split("\n")[0])
    parser.add_argument("csv")
    parser.add_argument("png")
    parser.add_argument("--title", default="split n×n into n×1 + 1×n")
    args = parser.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        print("tools/plot.py: matplotlib is missing (Debian: apt-get install python3-matplotlib, "
              "or tools/setup.sh --optional)",
              file=sys.stderr)
        return 3
    try:
        with open(args.csv, newline="") as f:
            rows = list(csv.DictReader(f))
        forward, train = shape_points(rows, "forward"), shape_points(rows, "train")
    except (OSError, KeyError, ValueError) as e:
        print(f"tools/plot.py: {args.csv}: not a bench sweep CSV ({e})", file=sys.stderr)
        return 2
    if not train:
        print(f"tools/plot.py: {args.csv}: no shape with a valid n×n and pair timing", file=sys.stderr)
        return 2

    ys = [max(p[4], FLOOR) for p in forward + train]
    ylim = (min(-0.3, min(ys) - 0.08), max(0.85, max(ys) + 0.06))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.8), sharey=True)
    draw(axes[0], forward, "forward", ylim)
    draw(axes[1], train, "forward + backward (training)", ylim)
    axes[0].set_ylabel("measured time saving: 1 − t pair / t n×n")
    batches = sorted({p[2] for p in train})
    handles = [Line2D([], [], ls="", marker="o", color=COLOURS[n], label=f"n = {n}") for n in COLOURS]
    handles += [Line2D([], [], ls="", marker=MARKERS.get(b, "s"), color="grey", label=f"batch {b}")
                for b in batches]
    handles += [Line2D([], [], ls="", marker="o", color="grey", markersize=(14 + 0.45 * c) ** 0.5,
                       label=f"c = m = {c}") for c in (16, 64, 256)]
    if min(p[4] for p in forward + train) < FLOOR:
        handles.append(Line2D([], [], ls="", marker="v", color="grey", label="below −100%, at the edge"))
    axes[1].legend(handles=handles, loc="best", fontsize=8, framealpha=0.9)
    fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
