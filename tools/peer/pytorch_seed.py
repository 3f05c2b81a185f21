#!/usr/bin/env python3
"""Trains the seed models in PyTorch with splitconv's hyperparameters, as the baseline.

The same network (models/seed-v0.net or seed-v1.net), Glorot-uniform kernels, zero biases,
Adam (lr 1e-3, betas 0.9/0.999, eps 1e-7), batch 32, reshuffled every epoch, the data
resident on the device as uint8 and divided by 255 when a batch is gathered: the fairest
PyTorch counterpart of `splitconv train`, given every advantage PyTorch offers, so that a
ratio against it is one against PyTorch at its best.

Modes (--modes, comma-separated, run in that order for each model):
  eager                    plain PyTorch: the gather, the /255, forward, backward and Adam as
                           separate launches from Python
  graph                    the WHOLE step captured once as a CUDA graph and replayed: the
                           batch's indices (a device-side offset into the epoch's order, moved
                           on inside the graph), the gather from the device-resident images,
                           the /255, forward, loss, backward and Adam; per epoch only the new
                           order is copied in place into the graph's static index tensor
  compile                  torch.compile (default mode) of gather + /255 + forward + loss; the
                           backward is compiled with it (AOTAutograd)
  compile-reduce-overhead  the same with mode="reduce-overhead" (CUDA graphs under the hood)
  compile-max-autotune     the same with mode="max-autotune" (autotuned kernels, CUDA graphs)
A mode followed by "+cl" (e.g. graph+cl) runs the model and its input in channels_last.

Every mode uses Adam with fused=True where this torch has it for the device (else foreach,
with a printed note) and, on CUDA, torch.backends.cudnn.benchmark = True; float32 throughout
(TF32 off, as splitconv without --tf32). Warm-up, capture and compilation run before the
timed region, after which the initial weights and a fresh Adam state are restored in place,
so the timed part is exactly EPOCHS epochs from the same start. Graph modes need a CUDA
device and are skipped elsewhere, compile modes need torch.compile; a skipped mode says why.

Prints one line a run, then the fastest mode for each model, and writes a JSON report (after
every run, so a run cut short keeps what finished): {torch, device, cudnn_benchmark, runs
[{model, mode, channels_last, adam, epochs, batch, steps, train_seconds, setup_seconds,
images_per_second, test_accuracy} or {model, mode, skipped | error}], fastest [{model, mode,
train_seconds, images_per_second}]}.

usage: pytorch_seed.py --data-dir DIR [--models v0,v1] [--modes eager,graph] [--epochs 5]
                       [--batch 32] [--device cuda|cpu] [--threads N] [--seed S] [--limit N]
                       [--time-limit S] [--json FILE]
Needs PyTorch (Debian: python3-torch; tools/setup.sh --optional installs it): exits 3 without
it, 2 on bad usage.
"""
import argparse
import copy
import gzip
import inspect
import json
import os
import struct
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # the classes below need torch: nothing but --help can run without it
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    sys.stderr.write("pytorch_seed.py: PyTorch is missing (Debian: python3-torch; "
                     "tools/setup.sh --optional installs it)\n")
    sys.exit(3)

BASE_MODES = ("eager", "graph", "compile", "compile-reduce-overhead", "compile-max-autotune")
COMPILE_MODE = {"compile": None, "compile-reduce-overhead": "reduce-overhead",
                "compile-max-autotune": "max-autotune"}


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


def gather(xs, ys, idx, channels_last):
    """The batch at idx from the device-resident uint8 images: float, /255, NCHW."""
    x = xs.index_select(0, idx).unsqueeze(1).float().div_(255.0)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, ys.index_select(0, idx)


class StepLoss(nn.Module):
    """Gather, /255, forward and loss of one batch: what the compile modes compile. The data
    are buffers, so a compiled graph reads them where they lie instead of copying them."""

    def __init__(self, model, xs, ys, channels_last):
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.register_buffer("xs", xs, persistent=False)
        self.register_buffer("ys", ys, persistent=False)

    def forward(self, idx):
        x, y = gather(self.xs, self.ys, idx, self.channels_last)
        return F.cross_entropy(self.model(x), y)


def evaluate(model, xs, ys, channels_last, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, xs.shape[0], batch):
            x = xs[i:i + batch].float().div_(255.0).unsqueeze(1)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            correct += (model(x).argmax(1) == ys[i:i + batch]).sum().item()
    model.train()
    return correct / xs.shape[0]


def make_adam(params, device, capturable, want_fused, notes):
    """Adam as Keras sets it up; fused where this torch has it for the device, else foreach
    on CUDA and PyTorch's default elsewhere."""
    kw = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    if capturable:
        kw["capturable"] = True
    fallback = "foreach" if device == "cuda" else "default"  # PyTorch's own choice off CUDA
    if want_fused:
        if "fused" not in inspect.signature(torch.optim.Adam.__init__).parameters:
            notes.append(f"torch {torch.__version__}'s Adam has no fused option; {fallback} used")
        else:
            try:
                return torch.optim.Adam(params, fused=True, **kw), "fused"
            except (RuntimeError, TypeError, ValueError) as e:
                notes.append(f"fused Adam not available here ({str(e).splitlines()[0]}); "
                             f"{fallback} used")
    if fallback == "foreach":
        return torch.optim.Adam(params, foreach=True, **kw), fallback
    return torch.optim.Adam(params, **kw), fallback


def reset(model, initial, opt):
    """Back to the initial weights and a fresh Adam state, in place: a captured graph keeps
    pointing at the same tensors (its gradients too, which every replay overwrites)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            t.copy_(initial[name])
    for state in opt.state.values():
        for key, v in state.items():
            if torch.is_tensor(v):
                v.zero_()
            elif key == "step":
                state[key] = 0


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def train(split, mode, channels_last, data, epochs, batch, device, seed, want_fused):
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = data
    model = Seed(split).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    initial = copy.deepcopy(model.state_dict())
    notes = []
    opt, adam = make_adam(list(model.parameters()), device, mode == "graph", want_fused, notes)
    n = xtr.shape[0]
    steps = n // batch  # full batches (a captured graph needs one shape); the rest is dropped
    if steps == 0:
        raise ValueError(f"{n} training images make no batch of {batch}")
    gen = torch.Generator(device=device).manual_seed(seed)
    perm = torch.randperm(n, generator=gen, device=device)

    t_setup = time.perf_counter()
    if mode == "graph":
        # Static inputs of the captured step: the epoch's order and the offset of the batch in
        # it, which the graph moves on by one batch every replay.
        order = perm.clone()
        offset = torch.zeros(1, dtype=torch.long, device=device)
        lanes = torch.arange(batch, dtype=torch.long, device=device)

        def whole_step():
            idx = order.index_select(0, offset + lanes)
            x, y = gather(xtr, ytr, idx, channels_last)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            offset.add_(batch)
            return loss

        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):  # warm up on a side stream, as torch.cuda.graphs requires
                opt.zero_grad(set_to_none=True)
                whole_step()
        torch.cuda.current_stream().wait_stream(s)
        opt.zero_grad(set_to_none=True)  # backward inside the capture allocates the grads
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            whole_step()

        def run_epoch(p):
            order.copy_(p)
            offset.zero_()
            for _ in range(steps):
                graph.replay()
    else:
        if mode in COMPILE_MODE:
            # The data stay where they are: no copy into a compiled graph's static inputs.
            mark_static = getattr(getattr(torch, "_dynamo", None), "mark_static_address", None)
            if mark_static is not None:
                mark_static(xtr)
                mark_static(ytr)
            kw = {"mode": COMPILE_MODE[mode]} if COMPILE_MODE[mode] else {}
            forward_loss = torch.compile(StepLoss(model, xtr, ytr, channels_last), **kw)
        else:
            def forward_loss(idx):
                x, y = gather(xtr, ytr, idx, channels_last)
                return F.cross_entropy(model(x), y)
        step_begin = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)

        def one_step(idx):
            if step_begin is not None and mode in COMPILE_MODE:
                step_begin()
            loss = forward_loss(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        for s in range(3):  # compile, record and warm up outside the timed region
            one_step(perm[s * batch:(s + 1) * batch])

        def run_epoch(p):
            for s in range(steps):
                one_step(p[s * batch:(s + 1) * batch])
    sync(device)
    setup_seconds = time.perf_counter() - t_setup
    reset(model, initial, opt)
    gen.manual_seed(seed)
    sync(device)

    t0 = time.perf_counter()
    for _ in range(epochs):
        run_epoch(torch.randperm(n, generator=gen, device=device))
    sync(device)
    seconds = time.perf_counter() - t0
    acc = evaluate(model, xte, yte, channels_last)
    r = {"model": "seed-v1" if split else "seed-v0", "mode": mode_name(mode, channels_last),
         "channels_last": channels_last, "adam": adam, "epochs": epochs, "batch": batch,
         "steps": steps * epochs, "train_seconds": seconds, "setup_seconds": setup_seconds,
         "images_per_second": steps * batch * epochs / seconds, "test_accuracy": acc}
    if notes:
        r["notes"] = notes
    return r


def mode_name(mode, channels_last):
    return mode + ("+cl" if channels_last else "")


def parse_modes(text):
    modes = []
    for item in text.split(","):
        base, cl = (item[:-3], True) if item.endswith("+cl") else (item, False)
        if base not in BASE_MODES:
            raise ValueError(f"unknown mode '{item}' (modes: {', '.join(BASE_MODES)}, each "
                             "optionally followed by +cl)")
        modes.append((base, cl))
    return modes


def why_skipped(mode, device):
    if mode == "graph" and device != "cuda":
        return f"CUDA graphs need a CUDA device (this run is on {device})"
    if mode in COMPILE_MODE and not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    return None


def fastest(runs):
    best = {}
    for r in runs:
        if "train_seconds" in r and (r["model"] not in best or
                                     r["train_seconds"] < best[r["model"]]["train_seconds"]):
            best[r["model"]] = r
    return [{k: b[k] for k in ("model", "mode", "train_seconds", "images_per_second")}
            for b in best.values()]


def write_report(path, report):
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(path + ".tmp", path)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        sys.stderr.write(f"pytorch_seed.py: {message}\n")
        sys.exit(2)


def main():
    ap = Parser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("SPLITCONV_DATA", "data"))
    ap.add_argument("--models", default="v0,v1")
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, default=0, help="first N training images")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    choices=("cuda", "cpu"))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=0,
                    help="start no run after this many seconds (0: no limit)")
    ap.add_argument("--no-fused", action="store_true", help="Adam without fused=True")
    ap.add_argument("--json")
    a = ap.parse_args()
    try:
        modes = parse_modes(a.modes)
    except ValueError as e:
        ap.error(str(e))
    models = a.models.split(",")
    for m in models:
        if m not in ("v0", "v1"):
            ap.error(f"unknown model '{m}' (models: v0, v1)")
    if a.epochs < 1 or a.batch < 1 or a.limit < 0:
        ap.error("--epochs and --batch must be positive, --limit not negative")
    if a.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this torch sees no CUDA device")
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
    device_name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    report = {"torch": torch.__version__, "device": device_name,
              "cudnn_benchmark": a.device == "cuda", "runs": [], "fastest": []}
    started = time.perf_counter()
    # Mode by mode, both models each: a run cut short has the first modes for every model.
    for mode, cl in modes:
        for m in models:
            name = mode_name(mode, cl)
            r = {"model": "seed-" + m, "mode": name}
            why = why_skipped(mode, a.device)
            if why is None and a.time_limit and time.perf_counter() - started > a.time_limit:
                why = f"out of time (--time-limit {a.time_limit:g} s)"
            if why is not None:
                r["skipped"] = why
            else:
                try:
                    r = train(m == "v1", mode, cl, data, a.epochs, a.batch, a.device, a.seed,
                              not a.no_fused)
                except Exception as e:  # a mode that does not run here is reported, not fatal
                    err = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    r["error"] = err
                    if mode == "graph" and not a.no_fused and a.device == "cuda":
                        # Fused Adam inside a captured graph is newer than capturable Adam.
                        try:
                            r = train(m == "v1", mode, cl, data, a.epochs, a.batch, a.device,
                                      a.seed, False)
                            r.setdefault("notes", []).append(
                                f"with fused Adam the capture failed ({err}); foreach used")
                        except Exception as e2:
                            r["error"] += f"; without fused Adam: {type(e2).__name__}: " \
                                          f"{str(e2).splitlines()[0] if str(e2) else ''}"
            r["device"] = device_name
            r["torch"] = torch.__version__
            report["runs"].append(r)
            if "skipped" in r:
                print(f"pytorch {r['model']} {name}: skipped: {r['skipped']}", flush=True)
            elif "error" in r:
                print(f"pytorch {r['model']} {name}: failed: {r['error']}", flush=True)
            else:
                print(f"pytorch {r['model']} {name}: {r['train_seconds']:.2f} s, "
                      f"{r['images_per_second']:.0f} img/s, test acc {r['test_accuracy']:.4f} "
                      f"(adam {r['adam']}, setup {r['setup_seconds']:.1f} s)", flush=True)
                for note in r.get("notes", []):
                    print(f"  note: {note}", flush=True)
            report["fastest"] = fastest(report["runs"])
            write_report(a.json, report)
    for b in report["fastest"]:
        print(f"fastest pytorch {b['model']}: {b['mode']} {b['train_seconds']:.2f} s, "
              f"{b['images_per_second']:.0f} img/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
