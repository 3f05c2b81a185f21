#!/usr/bin/env python3
"""Loads a splitconv checkpoint into the equivalent PyTorch model and checks that its
predictions agree with `splitconv predict` on the same images.

The checkpoint's tensors are used unchanged (conv OIHW, dense [out, in], flatten in NCHW
order: PyTorch's layouts); the model is built from the spec in the file's metadata.

usage: check_checkpoint.py CK.safetensors IMAGES.idx[.gz] [--splitconv build/splitconv]
                           [--count N] [--tolerance 1e-4]
Exit 0 when every class agrees and the probabilities differ by at most the tolerance, 1 when
not, 2 on bad usage, 3 without PyTorch (Debian: python3-torch; tools/setup.sh --optional
installs it).
"""
import argparse
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n, = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{name}: dtype {t['dtype']}"
        b, e = t["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(body[b:e]), dtype=torch.float32).reshape(t["shape"])
    return tensors, meta


def parse_spec(text):
    """The .net format: returns the input (h, w, c) and a list of layer dicts."""
    layers, counts, shape = [], {}, None
    for raw in text.splitlines():
        words = raw.split("#")[0].split()
        if not words:
            continue
        kind = words[0]
        if kind == "input":
            shape = tuple(int(v) for v in words[1].split("x"))
            continue
        layer = {"kind": kind, "act": "none", "stride": None, "padding": "valid"}
        rest = words[1:]
        if kind == "conv":
            layer["units"] = int(rest[0])
            layer["kh"], layer["kw"] = (int(v) for v in rest[1].split("x"))
            rest = rest[2:]
        elif kind == "maxpool":
            layer["kh"], layer["kw"] = (int(v) for v in rest[0].split("x"))
            rest = rest[1:]
        elif kind == "dense":
            layer["units"] = int(rest[0])
            rest = rest[1:]
        for w in rest:
            if "=" in w:
                k, v = w.split("=", 1)
                layer[k] = int(v) if k == "stride" else v
            else:
                layer["act"] = w
        prefix = {"conv": "conv", "maxpool": "pool", "dense": "dense", "flatten": "flatten"}[kind]
        counts[prefix] = counts.get(prefix, 0) + 1
        layer.setdefault("name", f"{prefix}{counts[prefix]}")
        layers.append(layer)
    return shape, layers


def same_pads(size, k, s):
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2  # the odd pixel at the bottom/right, as TensorFlow


def forward(layers, tensors, x):
    for l in layers:
        if l["kind"] == "conv":
            s = l["stride"] or 1
            if l["padding"] == "same":
                top, bottom = same_pads(x.shape[2], l["kh"], s)
                left, right = same_pads(x.shape[3], l["kw"], s)
                x = F.pad(x, (left, right, top, bottom))
            x = F.conv2d(x, tensors[l["name"] + ".weight"], tensors[l["name"] + ".bias"], stride=s)
        elif l["kind"] == "maxpool":
            x = F.max_pool2d(x, (l["kh"], l["kw"]), stride=l["stride"] or l["kh"])
        elif l["kind"] == "flatten":
            x = torch.flatten(x, 1)
        elif l["kind"] == "dense":
            x = F.linear(x, tensors[l["name"] + ".weight"], tensors[l["name"] + ".bias"])
        if l["act"] == "relu":
            x = F.relu(x)
    return F.softmax(x, dim=1)


def read_idx_images(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    n, h, w = struct.unpack(">III", data[4:16])
    return torch.frombuffer(bytearray(data[16:16 + n * h * w]), dtype=torch.uint8).reshape(n, 1, h, w)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"check_checkpoint.py: {message} (usage: check_checkpoint.py "
                         "CK.safetensors IMAGES.idx[.gz] [options]; --help)\n")
        sys.exit(2)


def main():
    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("images")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--splitconv", default=os.path.join(repo, "build", "splitconv"),
                    help="the binary (default: build/splitconv in the repository)")
    ap.add_argument("--count", type=int, default=1000, help="first N images")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    if torch is None:
        sys.stderr.write("check_checkpoint.py: PyTorch is missing (Debian: python3-torch; "
                         "tools/setup.sh --optional installs it)\n")
        return 3
    tensors, meta = read_safetensors(a.checkpoint)
    _, layers = parse_spec(meta["spec"])
    images = read_idx_images(a.images)[:a.count]
    with tempfile.TemporaryDirectory() as tmp:
        idx = os.path.join(tmp, "images.idx")
        with open(idx, "wb") as f:  # the same first N images for splitconv
            f.write(struct.pack(">IIII", 0x803, images.shape[0], images.shape[2], images.shape[3]))
            f.write(images.numpy().tobytes())
        out = os.path.join(tmp, "predict.json")
        subprocess.run([a.splitconv, "predict", a.checkpoint, "--images", idx, "--device", "cpu",
                        "--json", out], check=True, stdout=subprocess.DEVNULL)
        ours = json.load(open(out))["predictions"]
    with torch.no_grad():
        probs = forward(layers, tensors, images.float() / 255.0)
    theirs = probs.argmax(1).tolist()
    agree = sum(int(p["class"] == t) for p, t in zip(ours, theirs))
    diff = max(abs(float(v) - float(w)) for p, row in zip(ours, probs.tolist())
               for v, w in zip(p["probabilities"], row))
    print(f"{a.checkpoint}: {agree}/{len(ours)} classes agree with PyTorch {torch.__version__}; "
          f"largest probability difference {diff:.2e} (tolerance {a.tolerance:g})")
    return 0 if agree == len(ours) and diff <= a.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
