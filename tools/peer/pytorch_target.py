#!/usr/bin/env python3
"""Time to a target test accuracy in PyTorch: the fast-mnist recipe of splitconv, as the peer.

The same network (models/fast-mnist.net: conv 1->24 5x5 ReLU, max-pool 2, conv 24->32 3x3
ReLU, max-pool 2, dense 800->256 ReLU, dense 256->10), Glorot-uniform kernels and zero biases,
Adam (default lr 0.01, betas 0.7/0.9, eps 1e-7), PyTorch's OneCycleLR over the run (pct_start
0.3, cosine, div 25, final div 1e4, no momentum cycling), batch 256, the data in its own
order (no shuffling), resident on the device as uint8 and divided by 255 when a batch is
gathered. The test set is evaluated every --eval-every steps and at the end; the run stops at
the first evaluation at or above --target. The time counts from the first step until that
accuracy is known, evaluations included; the set-up before it (model, optimizer, data on the
device, a warm-up step whose effect is undone) is reported apart as setup_seconds, as
`splitconv train --target-accuracy` does. One difference remains: PyTorch adds eps to the
bias-corrected sqrt(v), Keras (and splitconv) to sqrt(v) before the correction.

Modes: eager; compile (torch.compile of the forward and loss, where this torch has it; on
CUDA only); a skipped mode says why.

usage: pytorch_target.py --data-dir DIR [--target 0.99] [--eval-every 20] [--epochs 1]
                         [--batch 256] [--lr 0.01] [--seeds N] [--seed S] [--modes eager]
                         [--device cuda|cpu] [--threads N] [--json FILE]
Writes {torch, device, runs [{mode, seed, reached, time_to_target_seconds, steps_to_target,
seconds, steps, evaluations, test_accuracy, setup_seconds}], summary [{mode, seeds, reached,
time mean/std/min/max (of the seeds that reached it), accuracy mean/std/min/max}]}.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_seed import load_mnist  # noqa: E402  (the same IDX reader as the seed peer)


class FastMnist(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 24, 5)
        self.conv2 = nn.Conv2d(24, 32, 3)
        self.dense1 = nn.Linear(800, 256)
        self.dense2 = nn.Linear(256, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Glorot, fans counting kh*kw
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.dense1(torch.flatten(x, 1)))
        return self.dense2(x)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def accuracy(model, xs, ys):
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, xs.shape[0], 2000):
            x = xs[i:i + 2000].float().div_(255.0)
            right += (model(x).argmax(1) == ys[i:i + 2000]).sum().item()
    model.train()
    return right / xs.shape[0]


def run(mode, seed, args, data, device):
    torch.manual_seed(seed)
    t_setup = time.perf_counter()
    (train_x, train_y), (test_x, test_y) = data
    model = FastMnist().to(device)
    step_fn = model
    if mode == "compile":
        step_fn = torch.compile(model)
    n = train_x.shape[0]
    steps_per_epoch = (n + args.batch - 1) // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                           eps=args.eps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total,
                                                pct_start=0.3, anneal_strategy="cos",
                                                cycle_momentum=False, div_factor=25.0,
                                                final_div_factor=1e4)
    # A warm-up step (kernels, compilation), then the weights and Adam's state put back.
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    x = train_x[:args.batch].float().div_(255.0)
    F.cross_entropy(step_fn(x), train_y[:args.batch]).backward()
    opt.zero_grad(set_to_none=True)
    model.load_state_dict(initial)
    sync(device)
    setup = time.perf_counter() - t_setup

    evaluations, step, acc, reached = 0, 0, 0.0, False
    start = time.perf_counter()
    for epoch in range(args.epochs):
        for s in range(steps_per_epoch):
            lo = s * args.batch
            x = train_x[lo:lo + args.batch].float().div_(255.0)
            loss = F.cross_entropy(step_fn(x), train_y[lo:lo + args.batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step() if step + 1 < total else None
            step += 1
            last = step == total
            if args.target > 0 and (last or (args.eval_every > 0 and step % args.eval_every == 0)
                                    or s + 1 == steps_per_epoch):
                acc = accuracy(model, test_x, test_y)
                evaluations += 1
                if acc >= args.target:
                    reached = True
                    break
        if reached:
            break
    sync(device)
    seconds = time.perf_counter() - start
    if args.target <= 0:
        acc = accuracy(model, test_x, test_y)
    return {"mode": mode, "seed": seed, "reached": reached,
            "time_to_target_seconds": seconds if reached else None,
            "steps_to_target": step if reached else None, "seconds": seconds, "steps": step,
            "evaluations": evaluations, "test_accuracy": acc, "setup_seconds": setup}


def summary(runs, mode):
    rs = [r for r in runs if r["mode"] == mode and "error" not in r]
    if not rs:
        return None
    def stats(values):
        if not values:
            return None
        return {"mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values), "max": max(values)}
    return {"mode": mode, "seeds": len(rs), "reached": sum(r["reached"] for r in rs),
            "time_to_target": stats([r["seconds"] for r in rs if r["reached"]]),
            "accuracy": stats([r["test_accuracy"] for r in rs])}


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"pytorch_target: {message}\n")
        sys.exit(2)


def main():
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--beta1", type=float, default=0.7)
    p.add_argument("--beta2", type=float, default=0.9)
    p.add_argument("--eps", type=float, default=1e-7)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="eager")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args()
    if not 0 <= args.target <= 1:
        p.error("--target: expected an accuracy from 0 to 1")
    if args.batch < 1 or args.epochs < 1 or args.seeds < 1 or args.eval_every < 0:
        p.error("--batch, --epochs and --seeds must be positive, --eval-every 0 or more")
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in ("eager", "compile"):
            p.error(f"--modes: unknown mode '{m}' (eager, compile)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    try:
        trx, try_, tex, tey = load_mnist(args.data_dir)
        trx, tex = trx.reshape(-1, 1, 28, 28), tex.reshape(-1, 1, 28, 28)
        try_, tey = try_.long(), tey.long()
    except (OSError, ValueError) as e:
        sys.stderr.write(f"pytorch_target: {e}\n")
        sys.exit(2)
    data = ((trx.to(device), try_.to(device)), (tex.to(device), tey.to(device)))

    report = {"torch": torch.__version__, "device": str(device), "target": args.target,
              "eval_every": args.eval_every, "batch": args.batch, "epochs": args.epochs,
              "lr": args.lr, "runs": [], "summary": []}
    for mode in modes:
        why = None
        if mode == "compile" and not hasattr(torch, "compile"):
            why = f"torch {torch.__version__} has no torch.compile"
        elif mode == "compile" and device.type != "cuda":
            why = "compile is measured on CUDA only"
        if why:
            print(f"{mode}: skipped: {why}")
            report["runs"].append({"mode": mode, "skipped": why})
            continue
        for k in range(args.seeds):
            r = run(mode, args.seed + k, args, data, device)
            report["runs"].append(r)
            state = (f"reached in {r['seconds']:.3f} s, {r['steps']} steps" if r["reached"]
                     else f"not reached ({r['steps']} steps, {r['seconds']:.3f} s)")
            print(f"{mode} seed {r['seed']}: accuracy {r['test_accuracy']:.4f}, target "
                  f"{args.target}: {state}; set-up {r['setup_seconds']:.2f} s", flush=True)
        report["summary"].append(summary(report["runs"], mode))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
