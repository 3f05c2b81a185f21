#!/usr/bin/env python3
"""Plots of splitconv's reports: a sweep CSV, a train or a compare JSON report.

usage: tools/plot.py INPUT OUT.png [--title TITLE]

A sweep CSV (`splitconv bench sweep --csv`, one row per shape and variant): realised against
theoretical savings of splitting n×n convolutions. For every shape the fastest valid n×n and
the fastest valid pair are taken, forward and forward + backward apart; each shape is one
point: x the theoretical saving 1 − MACs_pair/MACs_n×n, y the measured time saving
1 − t_pair/t_n×n. On the diagonal, time shrinks exactly as MACs do; above zero the split pays.

A train JSON report (`splitconv train --json`): training loss (solid) and test loss (dashed),
and test accuracy, per epoch.

A compare JSON report (`splitconv compare --json`): the same, one line per model, the mean
across seeds with its 95% band (Student t, from the report's `summary` curves) when there are
several; and the final test accuracy of each model: every seed a dot, the mean and its 95%
interval; the paired verdicts below.

Needs matplotlib (Debian: python3-matplotlib; tools/setup.sh installs it); exits 3
without it, 2 on bad input.
"""
import argparse
import csv
import json
import os
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


# --- train and compare reports ---

LINE_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def _value(summary, key):
    """A summary's number, None where the report has null (no interval from one seed)."""
    v = summary.get(key)
    return None if v is None else float(v)


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def report_series(report):
    """One series per model: name, epochs, loss, test loss and test accuracy per epoch (each
    [(mean, low, high)], low and high None without a band), the final accuracy of every seed,
    and the final accuracy's summary (mean, low, high)."""
    series = []
    if "summary" in report:  # compare
        for s in report["summary"]:
            def curve(key, curves=s["curves"]):
                return [(_value(c[key], "mean"), _value(c[key], "low"), _value(c[key], "high"))
                        for c in curves]
            finals = [float(r["test_accuracy"]) for r in report["models"] if r["model"] == s["model"]]
            acc = s["test_accuracy"]
            series.append({"name": s.get("name") or _stem(s["model"]),
                           "epochs": [int(c["epoch"]) for c in s["curves"]],
                           "loss": curve("loss"), "test_loss": curve("test_loss"),
                           "test_accuracy": curve("test_accuracy"), "finals": finals,
                           "final": (_value(acc, "mean"), _value(acc, "low"), _value(acc, "high"))})
    elif "epochs" in report and "model" in report:  # train
        epochs = report["epochs"]
        def curve(key):
            return [(float(e[key]), None, None) for e in epochs]
        acc = float(report["test_accuracy"])
        series.append({"name": _stem(report["model"]), "epochs": [int(e["epoch"]) for e in epochs],
                       "loss": curve("loss"), "test_loss": curve("test_loss"),
                       "test_accuracy": curve("test_accuracy"), "finals": [acc],
                       "final": (acc, None, None)})
    else:
        raise KeyError("neither a train report (model, epochs) nor a compare report (summary)")
    return series


def default_title(report):
    device = report.get("device_description") or report.get("device") or ""
    if "summary" in report:
        names = " vs ".join(s.get("name") or _stem(s["model"]) for s in report["summary"])
        seeds = int(report.get("seeds", 1))
        return (f"{names} on {report.get('dataset', '?')}: {report.get('epochs', '?')} epochs, "
                f"batch {report.get('batch', '?')}, {seeds} seed{'s' if seeds != 1 else ''}, {device}")
    return (f"{_stem(report['model'])} on {report.get('dataset', '?')}: batch "
            f"{report.get('batch', '?')}, seed {report.get('seed', '?')}, {device}")


def draw_curve(ax, epochs, points, colour, label, ls="-", band=True):
    means = [p[0] for p in points]
    ax.plot(epochs, means, color=colour, ls=ls, marker="o" if ls == "-" else None, ms=4,
            lw=1.6 if ls == "-" else 1.1, label=label)
    if band and all(p[1] is not None and p[2] is not None for p in points):
        ax.fill_between(epochs, [p[1] for p in points], [p[2] for p in points], color=colour,
                        alpha=0.2, lw=0)


def draw_finals(ax, series):
    """Every seed's final test accuracy (dots), the mean and its 95% interval (a bar)."""
    for i, s in enumerate(series):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        n = len(s["finals"])
        # The seeds to the left of the interval bar, spread out so that none hides another.
        offsets = [-0.17] if n == 1 else [-0.3 + 0.24 * k / (n - 1) for k in range(n)]
        ax.scatter([i + o for o in offsets], s["finals"], s=16, color=colour, alpha=0.55,
                   edgecolors="black", linewidths=0.3, zorder=2)
        mean, low, high = s["final"]
        if low is not None:
            ax.errorbar([i], [mean], yerr=[[mean - low], [high - mean]], fmt="D", color="black",
                        ms=5, capsize=8, lw=1.4, zorder=3)
            text = f"{mean:.4f}\n± {(high - low) / 2:.4f}"
        else:
            ax.scatter([i], [mean], marker="D", s=30, color="black", zorder=3)
            text = f"{mean:.4f}"
        ax.annotate(text, (i, mean), xytext=(14, 0), textcoords="offset points", va="center",
                    fontsize=8)
    ax.set_xticks(range(len(series)), [s["name"] for s in series])
    ax.set_xlim(-0.6, len(series) - 0.4)
    ax.set_title("final test accuracy: seeds, mean, 95% CI")
    ax.grid(alpha=0.3, axis="y")


def plot_report(report, png, title, plt):
    series = report_series(report)
    if not any(s["epochs"] for s in series):
        raise ValueError("no epochs to draw")
    compare = "summary" in report
    fig, axes = plt.subplots(1, 3 if compare else 2, figsize=(15 if compare else 11, 5.2))
    several = any(len(s["finals"]) > 1 for s in series)
    for i, s in enumerate(series):
        colour = LINE_COLOURS[i % len(LINE_COLOURS)]
        draw_curve(axes[0], s["epochs"], s["loss"], colour, f"{s['name']} training")
        draw_curve(axes[0], s["epochs"], s["test_loss"], colour, f"{s['name']} test", ls="--",
                   band=False)
        draw_curve(axes[1], s["epochs"], s["test_accuracy"], colour, s["name"])
    band = " (mean, 95% band across seeds)" if several else ""
    axes[0].set_title("loss" + band)
    axes[0].set_ylabel("cross-entropy")
    axes[1].set_title("test accuracy" + band)
    for ax in axes[:2]:
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, framealpha=0.9)
    rect = [0, 0, 1, 1]
    if compare:
        draw_finals(axes[2], series)
        verdicts = [p["verdict"] for p in report.get("pairs", []) if p.get("verdict")]
        if verdicts:
            fig.text(0.5, 0.01, "\n".join(verdicts), ha="center", va="bottom", fontsize=9)
            rect = [0, 0.035 * len(verdicts) + 0.01, 1, 1]
    fig.suptitle(title or default_title(report))
    fig.tight_layout(rect=rect)
    fig.savefig(png, dpi=110)


def is_json(path):
    if path.endswith(".json"):
        return True
    with open(path, "rb") as f:
        return f.read(64).lstrip().startswith(b"{")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"tools/plot.py: {message} (usage: tools/plot.py INPUT OUT.png "
                         "[--title TITLE]; --help)\n")
        sys.exit(2)


def main():
    parser = Parser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="a bench sweep CSV, or a train or compare JSON report")
    parser.add_argument("png")
    parser.add_argument("--title", help="the figure's title (default: from the input)")
    args = parser.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError:
        print("tools/plot.py: matplotlib is missing (Debian: apt-get install python3-matplotlib, "
              "or tools/setup.sh)",
              file=sys.stderr)
        return 3
    try:
        report = None
        if is_json(args.input):
            with open(args.input) as f:
                report = json.load(f)
            if not isinstance(report, dict):
                raise ValueError("not a JSON object")
            report_series(report)
    except (OSError, KeyError, ValueError, TypeError) as e:
        print(f"tools/plot.py: {args.input}: not a train or compare report ({e})", file=sys.stderr)
        return 2
    if report is not None:
        try:
            plot_report(report, args.png, args.title, plt)
        except (KeyError, ValueError, TypeError) as e:
            print(f"tools/plot.py: {args.input}: cannot draw it ({e})", file=sys.stderr)
            return 2
        return 0
    return plot_sweep(args, plt, Line2D)


def plot_sweep(args, plt, Line2D):
    title = args.title or "split n×n into n×1 + 1×n"
    try:
        with open(args.input, newline="") as f:
            rows = list(csv.DictReader(f))
        forward, train = shape_points(rows, "forward"), shape_points(rows, "train")
    except (OSError, KeyError, ValueError) as e:
        print(f"tools/plot.py: {args.input}: not a bench sweep CSV ({e})", file=sys.stderr)
        return 2
    if not train:
        print(f"tools/plot.py: {args.input}: no shape with a valid n×n and pair timing", file=sys.stderr)
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
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
