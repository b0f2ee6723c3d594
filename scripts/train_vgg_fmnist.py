#!/usr/bin/python3
"""Train a small VGG-style CNN on Fashion-MNIST for mpsearch's evaluation tables.

Usage (from the repository root, with the system Python that has PyTorch 1.13):

    /usr/bin/python3 scripts/train_vgg_fmnist.py [--data /usr/share/datasets/fashion-mnist]
                                                 [--out testdata/vgg-fmnist] [--epochs 2]
                                                 [--threads 2] [--seed 1]

Architecture (3x3 convolutions with padding 1, each followed by BatchNormalization and ReLU):

    conv32 conv32 pool2  conv64 conv64 pool2  conv128 pool2      28 -> 14 -> 7 -> 3
    flatten 128*3*3 = 1152, fc 1152->256, ReLU, fc 256->10       (437,226 parameters)

Trained with Adam and a one-cycle schedule (batch 128) on 2 CPU threads, reading the IDX files
with gzip + numpy (nothing is downloaded; the IDX reader, the normalization and the float64 numpy
ONNX evaluator are shared with scripts/train_demo.py). Normalization: x = (pixel/255 - 0.2860)/0.3530.

Writes into --out:

  model.onnx  opset 13, input "input" float32 [N,1,28,28] (dynamic N), output "logits" [N,10];
              exported in eval mode with inference-mode BatchNormalization nodes kept (the engine
              folds them at import); checked with onnx.checker and against an independent float64
              numpy evaluation of the graph on the first --check test images.
  meta.json   float test accuracy on all 10000 test images (PyTorch, float32), parameter count,
              normalization, how it was trained.

Reproducible on the same machine and thread count: torch and numpy seeds are fixed and the
shuffling order comes from a numpy RandomState.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_demo import (  # noqa: E402  (shared helpers; importing runs nothing)
    CLASSES, MEAN, ONNX_LOGIT_TOL, STD, accuracy, normalize, read_idx_images, read_idx_labels,
    run_onnx_numpy)


class VGGFashion(nn.Module):
    """28x28x1 -> 10 logits; see the module docstring for the layer list."""

    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(1, 32), *block(32, 32), nn.MaxPool2d(2),      # 28 -> 14
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),     # 14 -> 7
            *block(64, 128), nn.MaxPool2d(2),                    # 7 -> 3 (floor)
        )
        self.fc1 = nn.Linear(128 * 3 * 3, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        x = torch.flatten(self.features(x), 1)
        return self.fc2(F.relu(self.fc1(x)))


def train_and_export(model_cls, out_name, default_lr, script, description, onnx_eval):
    """Train model_cls on Fashion-MNIST, export it to ONNX and check the export with onnx_eval
    (a numpy evaluator of the exported graph); shared by the VGG-style and residual scripts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--out", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "testdata", out_name))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=default_lr)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--check", type=int, default=500,
                   help="test images used for the numpy-vs-PyTorch check of the export")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.RandomState(args.seed)

    train_x = normalize(read_idx_images(os.path.join(args.data, "train-images-idx3-ubyte.gz")))
    train_y = read_idx_labels(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    test_x = normalize(read_idx_images(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")))
    test_y = read_idx_labels(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))

    model = model_cls()
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
        for step, i in enumerate(range(0, len(order), args.batch)):
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
            if step % 100 == 0:
                print(f"  epoch {epoch + 1} step {step}/{steps_per_epoch}: loss {total / seen:.4f}, "
                      f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / seen:.4f}, "
              f"test acc {acc:.4f}, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    train_seconds = time.time() - t0

    model.eval()
    acc_full = accuracy(model, test_x, test_y)

    os.makedirs(args.out, exist_ok=True)
    model_path = os.path.join(args.out, "model.onnx")
    torch.onnx.export(
        model, torch.from_numpy(test_x[:1]), model_path,
        opset_version=13, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        do_constant_folding=False,
        # PRESERVE with the model in eval mode keeps inference-mode BatchNormalization nodes
        # (EVAL would fold them into the convolutions); the engine folds them at import.
        training=torch.onnx.TrainingMode.PRESERVE)
    m = onnx.load(model_path)
    onnx.checker.check_model(m, full_check=True)

    # Independent check of the export: float64 numpy evaluation of the ONNX graph vs PyTorch.
    cx, cy = test_x[:args.check], test_y[:args.check]
    onnx_logits = onnx_eval(m, cx)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(cx)).numpy().astype(np.float64)
    max_diff = float(np.abs(onnx_logits - torch_logits).max())
    onnx_acc = float((onnx_logits.argmax(1) == cy).mean())
    torch_acc = float((torch_logits.argmax(1) == cy).mean())
    if max_diff > ONNX_LOGIT_TOL or onnx_acc != torch_acc:
        raise SystemExit(f"exported model disagrees with PyTorch: max |logit diff| {max_diff:.3g}, "
                         f"accuracy {onnx_acc} vs {torch_acc} on {args.check} images")

    meta = {
        "float_test_accuracy": round(acc_full, 6),
        "test_images": len(test_x),
        "params": n_params,
        "mean": [MEAN],
        "std": [STD],
        "input_shape": [1, 28, 28],
        "classes": CLASSES,
        "onnx_numpy_max_logit_diff": float(f"{max_diff:.3g}"),
        "onnx_numpy_check_images": args.check,
        "nodes": [n.name + " (" + n.op_type + ")" for n in m.graph.node],
        "trained_with": (f"torch {torch.__version__} CPU, scripts/" + script + ": Adam max lr "
                         f"{args.lr}, one-cycle schedule, {args.epochs} epochs, batch {args.batch}, "
                         f"seed {args.seed}, {args.threads} threads ({train_seconds:.0f}s), "
                         f"onnx opset 13"),
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps({k: meta[k] for k in ("params", "float_test_accuracy",
                                           "onnx_numpy_max_logit_diff")}))


def main():
    train_and_export(VGGFashion, "vgg-fmnist", 2e-3, "train_vgg_fmnist.py",
                     __doc__.split("\n\n")[0], run_onnx_numpy)


if __name__ == "__main__":
    main()
