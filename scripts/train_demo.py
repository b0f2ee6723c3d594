#!/usr/bin/python3
"""Train the built-in demo network and write the files embedded by package demo.

Usage (from the repository root, with the system Python that has PyTorch 1.13):

    /usr/bin/python3 scripts/train_demo.py [--data /usr/share/datasets/fashion-mnist] [--out demo]
                                           [--epochs 4] [--threads 2] [--seed 1]

Reads the Fashion-MNIST IDX files (gzip + numpy, nothing is downloaded), trains a small CNN
(three 3x3 convolutions with BatchNormalization, two fully connected layers, about 40k parameters)
with Adam for a few epochs on 2 CPU threads, and writes into --out:

  model.onnx  opset 13, input "input" float32 [N,1,28,28] (dynamic N), output "logits" [N,10];
              exported in eval mode with its inference-mode BatchNormalization nodes kept (the
              engine folds them at import); checked with onnx.checker and against an
              independent float64 numpy evaluation of the graph (max |logit diff| in meta.json).
  calib.npz   "x" float32 [512,1,28,28]: the first 512 TRAINING images, normalized; "y" int64 [512].
  test.npz    "x" float32 [1000,1,28,28]: the first 1000 TEST images, normalized; "y" int64 [1000].
  meta.json   normalization, float accuracies measured here with PyTorch, class names, parameter count.

Normalization (the same as shared/fixtures/fmnist-lenet): x = (pixel/255 - 0.2860) / 0.3530.
The npz files hold already-normalized float32 images, so a consumer needs no mean/std to use them;
they are written like np.savez_compressed (deflate inside the zip, which Go's archive/zip reads),
with fixed timestamps so that a rerun gives byte-identical files.

The run is reproducible on the same machine and thread count: seeds are fixed for torch and numpy,
and the shuffling order comes from a numpy RandomState.
"""

import argparse
import gzip
import io
import json
import os
import sys
import time
import zipfile

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = 0.2860
STD = 0.3530
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
N_CALIB = 512
N_TEST_DEMO = 1000
# float32 PyTorch vs float64 numpy: each layer adds a few float32 ulps of its outputs (logits are of
# order 10, so ~1e-6 each; measured 5e-6 in all); 1e-3 leaves ample room yet catches any wrong
# weight, attribute or BatchNormalization mode, which move logits by far more.
ONNX_LOGIT_TOL = 1e-3


def read_idx_images(path):
    """Return uint8 [N,1,rows,cols] from a gzipped IDX3 file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = np.frombuffer(data[:16], dtype=">u4")
    if magic != 2051:
        raise ValueError(f"{path}: IDX image magic {magic}, want 2051")
    pixels = np.frombuffer(data[16:], dtype=np.uint8)
    if pixels.size != n * rows * cols:
        raise ValueError(f"{path}: {pixels.size} pixels, want {n}*{rows}*{cols}")
    return pixels.reshape(int(n), 1, int(rows), int(cols))


def read_idx_labels(path):
    """Return int64 [N] from a gzipped IDX1 file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = np.frombuffer(data[:8], dtype=">u4")
    if magic != 2049:
        raise ValueError(f"{path}: IDX label magic {magic}, want 2049")
    labels = np.frombuffer(data[8:], dtype=np.uint8)
    if labels.size != n:
        raise ValueError(f"{path}: {labels.size} labels, want {n}")
    return labels.astype(np.int64)


def normalize(pixels):
    """uint8 pixels -> float32 (pixel/255 - MEAN)/STD, computed in float32 like the fixture."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    return (x - np.float32(MEAN)) / np.float32(STD)


class DemoNet(nn.Module):
    """28x28x1 -> 10 logits.

    conv1 1->16 3x3 pad 1, BN, ReLU, maxpool 2   (28 -> 14)
    conv2 16->32 3x3 pad 1, BN, ReLU, maxpool 2  (14 -> 7)
    conv3 32->64 3x3 pad 0, BN, ReLU, maxpool 2  (7 -> 5 -> 2)
    flatten 256, fc1 256->64, ReLU, fc2 64->10
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=0)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(64 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.max_pool2d(F.relu(self.bn3(self.conv3(x))), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_onnx_numpy(m, x):
    """Evaluate the exported graph with plain numpy (float64), independently of torch.

    Supports exactly the ops this script exports (Conv, BatchNormalization, Relu, MaxPool,
    Flatten, Gemm) and raises on anything else, so a change of export surfaces here.
    """
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x.astype(np.float64)
    for node in m.graph.node:
        a = _attrs(node)
        ins = [env[i] for i in node.input if i]
        if node.op_type == "Conv":
            w = ins[0 + 1]
            pads = a.get("pads", [0, 0, 0, 0])
            strides = a.get("strides", [1, 1])
            if a.get("group", 1) != 1 or a.get("dilations", [1, 1]) != [1, 1]:
                raise ValueError(f"{node.name}: grouped or dilated Conv not supported here")
            xp = np.pad(ins[0], ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
            co, ci, kh, kw = w.shape
            n, _, h, wd = xp.shape
            oh = (h - kh) // strides[0] + 1
            ow = (wd - kw) // strides[1] + 1
            out = np.zeros((n, co, oh, ow))
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, :, i:i + strides[0] * oh:strides[0], j:j + strides[1] * ow:strides[1]]
                    out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
            if len(ins) > 2:
                out += ins[2][None, :, None, None]
            y = out
        elif node.op_type == "BatchNormalization":
            if len(node.output) != 1 or a.get("training_mode", 0) != 0:
                raise ValueError(f"{node.name}: training-mode BatchNormalization exported")
            xb, scale, bias, mean, var = ins
            eps = a.get("epsilon", 1e-5)
            sh = (1, -1, 1, 1)
            y = (xb - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * scale.reshape(sh) + bias.reshape(sh)
        elif node.op_type == "Relu":
            y = np.maximum(ins[0], 0)
        elif node.op_type == "MaxPool":
            k = a["kernel_shape"]
            s = a.get("strides", [1, 1])
            if any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0) or k != s:
                raise ValueError(f"{node.name}: only non-overlapping unpadded MaxPool supported here")
            n, c, h, wd = ins[0].shape
            oh, ow = h // k[0], wd // k[1]
            y = ins[0][:, :, :oh * k[0], :ow * k[1]].reshape(n, c, oh, k[0], ow, k[1]).max(axis=(3, 5))
        elif node.op_type == "Flatten":
            ax = a.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif node.op_type == "Gemm":
            am, bm = ins[0], ins[1]
            if a.get("transA", 0):
                am = am.T
            if a.get("transB", 0):
                bm = bm.T
            y = a.get("alpha", 1.0) * am @ bm
            if len(ins) > 2:
                y = y + a.get("beta", 1.0) * ins[2]
        else:
            raise ValueError(f"{node.name}: op {node.op_type} not supported by the numpy check")
        env[node.output[0]] = y
    return env[m.graph.output[0].name]


def write_npz(path, **arrays):
    """Like np.savez_compressed, but byte-reproducible: fixed member order and timestamps."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.from_numpy(x[i:i + batch]))
            correct += int((logits.argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.RandomState(args.seed)

    train_px = read_idx_images(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    train_y = read_idx_labels(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    test_px = read_idx_images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    test_y = read_idx_labels(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
    train_x = normalize(train_px)
    test_x = normalize(test_px)

    model = DemoNet()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = (len(train_x) + args.batch - 1) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch)

    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(train_x))
        total, seen = 0.0, 0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            xb = torch.from_numpy(train_x[idx])
            yb = torch.from_numpy(train_y[idx])
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / seen:.4f}, "
              f"test acc {acc:.4f}, {time.time() - t0:.0f}s", file=sys.stderr)

    model.eval()
    acc_full = accuracy(model, test_x, test_y)
    acc_demo = accuracy(model, test_x[:N_TEST_DEMO], test_y[:N_TEST_DEMO])

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(
        model, torch.from_numpy(test_x[:1]), model_path,
        opset_version=13, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        # Nothing here needs constant folding, and torch warns about it in PRESERVE mode.
        do_constant_folding=False,
        # PRESERVE with the model in eval mode exports inference-mode BatchNormalization nodes;
        # EVAL would fold them into the convolutions (torch's eval peephole). Keeping them gives
        # readable initializer names and exercises the engine's BN folding at import.
        training=torch.onnx.TrainingMode.PRESERVE)
    m = onnx.load(model_path)
    onnx.checker.check_model(m, full_check=True)

    # Independent check of the export: numpy evaluation of the ONNX graph vs PyTorch.
    demo_x, demo_y = test_x[:N_TEST_DEMO], test_y[:N_TEST_DEMO]
    onnx_logits = run_onnx_numpy(m, demo_x)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(demo_x)).numpy().astype(np.float64)
    max_diff = float(np.abs(onnx_logits - torch_logits).max())
    onnx_acc_demo = float((onnx_logits.argmax(1) == demo_y).mean())
    if max_diff > ONNX_LOGIT_TOL or onnx_acc_demo != acc_demo:
        raise SystemExit(f"exported model disagrees with PyTorch: max |logit diff| {max_diff:.3g}, "
                         f"accuracy {onnx_acc_demo} vs {acc_demo}")

    write_npz(os.path.join(args.out, "calib.npz"), x=train_x[:N_CALIB], y=train_y[:N_CALIB])
    write_npz(os.path.join(args.out, "test.npz"), x=demo_x, y=demo_y)

    meta = {
        "mean": [MEAN],
        "std": [STD],
        "input_shape": [1, 28, 28],
        "float_test_accuracy_full": round(acc_full, 6),
        "float_test_accuracy_demo": round(acc_demo, 6),
        "classes": CLASSES,
        "params": n_params,
        "onnx_numpy_max_logit_diff": float(f"{max_diff:.3g}"),
        "calib_images": N_CALIB,
        "test_images": N_TEST_DEMO,
        "nodes": [n.name + " (" + n.op_type + ")" for n in m.graph.node],
        "trained_with": (f"torch {torch.__version__} CPU, scripts/train_demo.py: Adam max lr {args.lr}, "
                         f"one-cycle schedule, {args.epochs} epochs, batch {args.batch}, seed {args.seed}, "
                         f"{args.threads} threads, onnx opset 13"),
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps({k: meta[k] for k in ("params", "float_test_accuracy_full",
                                           "float_test_accuracy_demo")}))


if __name__ == "__main__":
    main()
