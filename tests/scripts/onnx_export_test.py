#!/usr/bin/env python3
"""`splitconv export` checked by others: each exported model passes the ONNX checker (with
full shape inference: output [N, classes]), states opset 13 and ends in Softmax, and OpenCV's
DNN module, run on the fixture images, gives `splitconv predict`'s probabilities to 1e-5.

The checkpoints: the fixtures of tests/fixtures/onnx imported (seed-v0, seed-v1, strided,
logits), seed-v0 split by SVD (factorize --checkpoint, --mid none), and a model trained for a
few steps on the fixture images, whose same padding is asymmetric (an even kernel, stride 2 on
an even map) with layers without activation.

usage: onnx_export_test.py SPLITCONV_BINARY
Needs python3-onnx and python3-opencv (with numpy); without them it says which is missing and
exits 77, which ctest reports as skipped.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77
TOLERANCE = 1e-5
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "onnx")

try:
    import numpy as np
    import onnx
    import cv2
except ImportError as e:
    print(f"skipped: {e.name} is not installed (Debian: python3-onnx, python3-opencv)")
    sys.exit(SKIP)


def read_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count, h, w = struct.unpack(">IIII", data[:16])
    assert magic == 0x803, f"{path}: magic {magic:#x}"
    pixels = np.frombuffer(data[16:], np.uint8).reshape(count, 1, h, w)
    return pixels.astype(np.float32) / np.float32(255)


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: splitconv {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


# Same padding that puts the odd pixel at the bottom/right, layers without activation.
ASYMMETRIC = """input 28x28x1
conv 6 4x4 relu padding=same
conv 8 3x3 relu stride=2 padding=same
maxpool 2x2
conv 8 3x1 none padding=same name=pair_v
conv 8 1x3 relu padding=same name=pair_h
flatten
dense 16 none
dense 10 none
"""


def write_idx(path, magic, array):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def trained_checkpoint(binary, tmp, images_path):
    """ASYMMETRIC trained for 3 epochs of 8 steps on the fixture images (labels i mod 10)."""
    with gzip.open(images_path, "rb") as f:
        data = f.read()
    count, h, w = struct.unpack(">III", data[4:16])
    pixels = np.frombuffer(data[16:], np.uint8).reshape(count, h, w)
    labels = np.arange(count) % 10
    os.makedirs(os.path.join(tmp, "data", "mnist"))
    for split in ("train", "t10k"):
        write_idx(os.path.join(tmp, "data", "mnist", split + "-images-idx3-ubyte"), 0x803, pixels)
        write_idx(os.path.join(tmp, "data", "mnist", split + "-labels-idx1-ubyte"), 0x801, labels)
    spec = os.path.join(tmp, "asymmetric.net")
    with open(spec, "w") as f:
        f.write(ASYMMETRIC)
    ck = os.path.join(tmp, "asymmetric.safetensors")
    run(binary, "train", spec, "--dataset", "mnist", "--data-dir", os.path.join(tmp, "data"),
        "--device", "cpu", "--epochs", "3", "--lr", "0.01", "--save", ck)
    return ck


def main():
    binary = sys.argv[1]
    images_path = os.path.join(FIXTURES, "images.idx3-ubyte.gz")
    images = read_images(images_path)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="splitconv-onnx-export-") as tmp:
        cks = []
        for name in ("seed-v0", "seed-v1", "strided", "logits"):
            ck = os.path.join(tmp, name + ".safetensors")
            run(binary, "import", os.path.join(FIXTURES, name + ".onnx"), "-o",
                os.path.join(tmp, name + ".net"), "--weights", ck)
            cks.append((name, ck))
        svd = os.path.join(tmp, "seed-v0-svd.safetensors")
        run(binary, "factorize", "--checkpoint", cks[0][1], "--mid", "none", "-o", svd)
        cks.append(("seed-v0-svd", svd))
        cks.append(("asymmetric", trained_checkpoint(binary, tmp, images_path)))

        for name, ck in cks:
            out = os.path.join(tmp, name + ".onnx")
            run(binary, "export", ck, "-o", out)
            model = onnx.load(out)
            onnx.checker.check_model(model, full_check=True)
            opsets = {o.domain: o.version for o in model.opset_import}
            assert opsets.get("", opsets.get("ai.onnx")) == 13, f"{name}: opsets {opsets}"
            assert model.graph.node[-1].op_type == "Softmax", f"{name}: ends in {model.graph.node[-1].op_type}"
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
            dims = [d.dim_value or d.dim_param for d in inferred.graph.output[0].type.tensor_type.shape.dim]

            report = os.path.join(tmp, name + ".json")
            run(binary, "predict", ck, "--images", images_path, "--device", "cpu", "--json", report)
            with open(report) as f:
                want = np.array([p["probabilities"] for p in json.load(f)["predictions"]], np.float32)
            assert dims == ["N", want.shape[1]], f"{name}: output dims {dims}"

            net = cv2.dnn.readNetFromONNX(out)
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            net.setInput(images)
            got = net.forward()
            worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf")
            ok = worst <= TOLERANCE
            failures += not ok
            print(f"{'ok' if ok else 'FAIL'}: {name}: checker passed, opset 13, output {dims}; "
                  f"OpenCV {cv2.__version__} against splitconv predict on {len(images)} images: "
                  f"largest difference {worst:.3g} (shapes {got.shape} {want.shape}; "
                  f"probabilities {want.min():.3g} to {want.max():.3g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
