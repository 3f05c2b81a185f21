#!/usr/bin/env python3
"""Trains the seed models in PyTorch with splitconv's hyperparameters, as the baseline.

The same network (models/seed-v0.net or seed-v1.net), Glorot-uniform kernels, zero biases,
Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7), batch 32, reshuffled every epoch, the data
resident on the device: the fairest PyTorch counterpart of `splitconv train`.

Modes: eager (plain PyTorch), graph (the step captured once with torch.cuda.graphs and
replayed; Adam with capturable=True), compile (torch.compile with its default mode, compiled
before the timed region). Prints one line a run and writes a JSON report.

usage: pytorch_seed.py --data-dir DIR [--models v0,v1] [--modes eager,graph] [--epochs 5]
                       [--device cuda|cpu] [--threads N] [--json FILE] [--limit N]
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    body = data[4 + 4 * dims:]
    t = torch.frombuffer(bytearray(body), dtype=torch.uint8)
    return t.reshape(shape)


def load_mnist(data_dir, name="mnist"):
    d = os.path.join(data_dir, name)
    return (read_idx(os.path.join(d, "train-images-idx3-ubyte")),
            read_idx(os.path.join(d, "train-labels-idx1-ubyte")),
            read_idx(os.path.join(d, "t10k-images-idx3-ubyte")),
            read_idx(os.path.join(d, "t10k-labels-idx1-ubyte")))


class Seed(nn.Module):
    """seed-v0 (split=False) and seed-v1 (split=True), in PyTorch's layouts."""

    def __init__(self, split):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        if split:
            self.conv3 = nn.Conv2d(64, 64, (3, 1))
            self.conv4 = nn.Conv2d(64, 64, (1, 3))
        else:
            self.conv3 = nn.Conv2d(64, 64, 3)
            self.conv4 = None
        self.dense1 = nn.Linear(576, 64)
        self.dense2 = nn.Linear(64, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Glorot uniform, fans count kh·kw
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        if self.conv4 is not None:
            x = F.relu(self.conv4(x))
        x = F.relu(self.dense1(torch.flatten(x, 1)))
        return self.dense2(x)


def evaluate(model, xs, ys, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, xs.shape[0], batch):
            out = model(xs[i:i + batch].float().div_(255.0).unsqueeze(1))
            correct += (out.argmax(1) == ys[i:i + batch]).sum().item()
    model.train()
    return correct / xs.shape[0]


def train(split, mode, data, epochs, batch, device, seed):
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = data
    model = Seed(split).to(device)
    if mode == "compile":
        model = torch.compile(model)
    capturable = mode == "graph"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7,
                           capturable=capturable)
    n = xtr.shape[0]
    steps = n // batch  # full batches (graph mode needs a static shape); the rest is dropped
    static_x = torch.zeros(batch, 1, 28, 28, device=device)
    static_y = torch.zeros(batch, dtype=torch.long, device=device)

    def step(x, y):
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    graph = None
    if mode == "graph":
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # warm up on a side stream, as torch.cuda.graphs requires
                step(static_x, static_y)
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_loss = step(static_x, static_y)
    elif mode == "compile":
        for _ in range(3):
            step(static_x, static_y)  # compile outside the timed region
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(device)
        for s in range(steps):
            idx = perm[s * batch:(s + 1) * batch]
            if graph is not None:
                static_x.copy_(xtr[idx].unsqueeze(1)).div_(255.0)
                static_y.copy_(ytr[idx])
                graph.replay()
            else:
                step(xtr[idx].unsqueeze(1).float().div_(255.0), ytr[idx])
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    acc = evaluate(model, xte, yte)
    return {"model": "seed-v1" if split else "seed-v0", "mode": mode, "epochs": epochs,
            "batch": batch, "steps": steps * epochs, "train_seconds": seconds,
            "images_per_second": steps * batch * epochs / seconds, "test_accuracy": acc}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("SPLITCONV_DATA", "data"))
    ap.add_argument("--models", default="v0,v1")
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="first N training images")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32, as splitconv without --tf32
        torch.backends.cudnn.allow_tf32 = False
    xtr, ytr, xte, yte = load_mnist(a.data_dir)
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    data = tuple(t.to(a.device) for t in (xtr, ytr.long(), xte, yte.long()))
    runs = []
    for m in a.models.split(","):
        for mode in a.modes.split(","):
            if mode == "graph" and a.device != "cuda":
                continue
            try:
                r = train(m == "v1", mode, data, a.epochs, a.batch, a.device, a.seed)
            except Exception as e:  # a mode that does not run here is reported, not fatal
                r = {"model": "seed-" + m, "mode": mode, "error": str(e).splitlines()[0]}
            r["device"] = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
            r["torch"] = torch.__version__
            runs.append(r)
            if "error" in r:
                print(f"pytorch {r['model']} {mode}: failed: {r['error']}", flush=True)
            else:
                print(f"pytorch {r['model']} {mode}: {r['train_seconds']:.2f} s, "
                      f"{r['images_per_second']:.0f} img/s, test acc {r['test_accuracy']:.4f}",
                      flush=True)
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump({"runs": runs}, f, indent=2)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    sys.exit(main())
