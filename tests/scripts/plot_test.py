#!/usr/bin/env python3
"""tools/plot.py draws valid PNGs from a compare report, a train report and a sweep CSV, and
answers bad input with one line and exit 2.

Needs matplotlib: run by a python3 without it, the test runs itself again with Debian's
/usr/bin/python3 when that one has it, and otherwise skips (exit 77) saying why.
"""
import contextlib
import importlib.util
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "scripts", "fixtures")
SKIP = 77


def has_matplotlib(python):
    return subprocess.run([python, "-c", "import matplotlib"], capture_output=True).returncode == 0


def png_chunks(path):
    """[(type, data)] of a PNG file; AssertionError unless signature and every CRC are right."""
    with open(path, "rb") as f:
        b = f.read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: no PNG signature"
    chunks, at = [], 8
    while at < len(b):
        length, kind = struct.unpack(">I4s", b[at:at + 8])
        data = b[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", b[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + data), f"{path}: bad CRC in {kind!r}"
        chunks.append((kind, data))
        at += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND", f"{path}: not IHDR … IEND"
    assert any(k == b"IDAT" for k, _ in chunks), f"{path}: no image data"
    return chunks


def png_size(path):
    width, height = struct.unpack(">II", png_chunks(path)[0][1][:8])
    return width, height


def load_plot():
    spec = importlib.util.spec_from_file_location("plot", os.path.join(ROOT, "tools", "plot.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_plot(plot, *args):
    """plot.py's main with these arguments: (exit code, stderr)."""
    err = io.StringIO()
    saved = sys.argv
    sys.argv = ["tools/plot.py", *args]
    try:
        with contextlib.redirect_stderr(err):
            code = plot.main()
    finally:
        sys.argv = saved
    return code, err.getvalue()


def main():
    if not has_matplotlib(sys.executable):
        if os.path.exists("/usr/bin/python3") and sys.executable != "/usr/bin/python3" \
                and has_matplotlib("/usr/bin/python3"):
            return subprocess.run(["/usr/bin/python3", os.path.abspath(__file__)]).returncode
        print("SKIP: no python3 with matplotlib (Debian: python3-matplotlib); tools/plot.py "
              "not tested")
        return SKIP
    plot = load_plot()
    failures = []

    def check(name, cond, detail=""):
        print(("ok   " if cond else "FAIL ") + name + (f": {detail}" if detail and not cond else ""))
        if not cond:
            failures.append(name)

    with tempfile.TemporaryDirectory(prefix="splitconv-plot-") as tmp:
        # Drawn at 110 dpi: a compare report 15 × 5.2 in, a train report 11 × 5.2, a sweep 13 × 5.8.
        for fixture, size in (("compare-report.json", (1650, 572)),
                              ("train-report.json", (1210, 572))):
            out = os.path.join(tmp, fixture.replace(".json", ".png"))
            code, err = run_plot(plot, os.path.join(FIXTURES, fixture), out)
            check(f"{fixture}: exit 0", code == 0, err)
            try:
                check(f"{fixture}: a valid PNG of {size[0]}x{size[1]}", png_size(out) == size,
                      str(png_size(out)))
            except (OSError, AssertionError, struct.error) as e:
                check(f"{fixture}: a valid PNG", False, str(e))

        out = os.path.join(tmp, "sweep.png")
        code, err = run_plot(plot, os.path.join(ROOT, "docs", "bench-cpu.csv"), out, "--title", "t")
        check("sweep CSV: exit 0", code == 0, err)
        check("sweep CSV: a valid PNG", os.path.exists(out) and png_size(out) == (1430, 638))

        # Bad input: one line naming the file, exit 2, no PNG.
        with open(os.path.join(FIXTURES, "compare-report.json")) as f:
            report = json.load(f)
        bad = {"not a report.json": {"dataset": "mnist"}}
        no_epochs = dict(report)
        no_epochs["summary"] = [dict(s, curves=[]) for s in report["summary"]]
        bad["no epochs.json"] = no_epochs
        for name, content in bad.items():
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                json.dump(content, f)
            out = os.path.join(tmp, name + ".png")
            code, err = run_plot(plot, path, out)
            check(f"{name}: exit 2", code == 2, f"exit {code}")
            check(f"{name}: one line naming the file", err.count("\n") == 1 and path in err, err)
            check(f"{name}: no PNG", not os.path.exists(out))
        path = os.path.join(tmp, "truncated.json")
        with open(path, "w") as f:
            f.write('{"summary": [')
        code, err = run_plot(plot, path, os.path.join(tmp, "truncated.png"))
        check("truncated JSON: exit 2, one line", code == 2 and err.count("\n") == 1, err)

    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
