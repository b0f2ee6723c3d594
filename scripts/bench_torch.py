#!/usr/bin/python3
"""PyTorch single-thread reference figures for the Go engine's benchmarks.

Usage (system Python with PyTorch 1.13):

    /usr/bin/python3 scripts/bench_torch.py [--lenet shared/fixtures/fmnist-lenet/lenet.onnx]
        [--vgg /tmp/vgg.onnx] [--data /usr/share/datasets/fashion-mnist]
        [--batch 256] [--repeats 3] [--warmup 1] [--models lenet,vgg] [--dtypes float32,float64]

Prints one JSON object on stdout (progress on stderr). The models are ONNX-equivalent torch
definitions whose weights are loaded from the ONNX files (Conv/Gemm nodes in graph order):
  - lenet: the fmnist-lenet fixture (conv 1->6 5x5 pad 2, ReLU, maxpool; conv 6->16 5x5, ReLU,
    maxpool; fc 400->120 ReLU, 120->84 ReLU, 84->10).
  - vgg: the VGG-style network of scripts/make_vgg.py (run first if --vgg does not exist; it is
    run automatically with its defaults when the file is missing).
For each model and dtype (the Go engine computes in float64, so both are reported), at the given
batch, with torch.set_num_threads(1):
  - forward_images_per_s: inference forward pass (no_grad).
  - fwd_bwd_images_per_s: forward + cross-entropy + backward to every parameter.
  - hvp_seconds: one exact Hessian-vector product of the mean cross-entropy w.r.t. all
    parameters by double backpropagation: forward, grad with create_graph=True, then grad of
    <grad, v> for a Rademacher v. The figure covers the whole product including the forward pass.
Inputs are N(0,1) and labels uniform in [0,10), from --seed. Each figure is the median of
--repeats timed runs after --warmup untimed ones (time.perf_counter).

Before timing, the LeNet reconstruction is checked against the fixture: its logits on the
fixture's calib.npy must match calib_logits.npy, and the mean cross-entropy over the first 1024
Fashion-MNIST training images is printed next to the fixture's 0.157038 (lenet_check in the JSON).
The machine is shared: figures are noisy.
"""

import argparse
import copy
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_vgg import VGG, load_onnx_weights  # noqa: E402

ROOT = os.path.dirname(HERE)
FIXTURE_LOSS_1024 = 0.157038
MEAN, STD = 0.2860, 0.3530


class LeNet(nn.Module):
    """The fmnist-lenet fixture's architecture (node names /conv1/Conv ... /fc3/Gemm)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def first_train_images(data_dir, n):
    """The first n Fashion-MNIST training images, normalized like the fixture, and their labels."""
    with gzip.open(os.path.join(data_dir, "train-images-idx3-ubyte.gz"), "rb") as f:
        head = f.read(16)
        if int.from_bytes(head[:4], "big") != 2051:
            raise SystemExit(f"{data_dir}: not an IDX3 image file")
        px = np.frombuffer(f.read(n * 28 * 28), dtype=np.uint8).reshape(n, 1, 28, 28)
    with gzip.open(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"), "rb") as f:
        f.read(8)
        y = np.frombuffer(f.read(n), dtype=np.uint8).astype(np.int64)
    x = (px.astype(np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    return x, y


def check_lenet(model, fixture_dir, data_dir):
    calib = np.load(os.path.join(fixture_dir, "calib.npy"))
    want_logits = np.load(os.path.join(fixture_dir, "calib_logits.npy"))
    x, y = first_train_images(data_dir, 1024)
    if not np.array_equal(x[:256], calib):
        raise SystemExit("first 256 training images differ from the fixture's calib.npy: normalization mismatch")
    with torch.no_grad():
        logits = model(torch.from_numpy(calib)).numpy()
        loss32 = float(F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))
        m64 = LeNet().double()
        m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        loss64 = float(F.cross_entropy(m64(torch.from_numpy(x).double()), torch.from_numpy(y)))
    logit_diff = float(np.abs(logits - want_logits).max())
    # The fixture's logits come from ONNX Runtime and match PyTorch to 7.6e-6 (fixture README); its
    # loss is printed to 6 decimals. Anything beyond float32 noise means a wrong reconstruction.
    if logit_diff > 1e-4 or abs(loss64 - FIXTURE_LOSS_1024) > 2e-6:
        raise SystemExit(f"LeNet reconstruction disagrees with the fixture: max |logit diff| {logit_diff:.3g}, "
                         f"loss {loss64:.6f} vs {FIXTURE_LOSS_1024}")
    return {
        "max_logit_diff_vs_fixture_calib_logits": float(f"{logit_diff:.3g}"),
        "mean_ce_first1024_float32": float(f"{loss32:.8g}"),
        "mean_ce_first1024_float64": float(f"{loss64:.8g}"),
        "fixture_mean_ce_first1024": FIXTURE_LOSS_1024,
    }


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def bench_model(model, in_shape, dtype, batch, warmup, repeats, seed):
    model = model.to(dtype).eval()
    params = [p for p in model.parameters()]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch,) + in_shape, generator=g).to(dtype)
    y = torch.randint(0, 10, (batch,), generator=g)
    v = [(torch.randint(0, 2, p.shape, generator=g) * 2 - 1).to(dtype) for p in params]

    def forward():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        for p in params:
            p.grad = None
        F.cross_entropy(model(x), y).backward()

    def hvp():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(grads, v))
        return torch.autograd.grad(dot, params)

    out = {}
    t, _ = timed(forward, warmup, repeats)
    out["forward_images_per_s"] = round(batch / t, 1)
    t, _ = timed(fwd_bwd, warmup, repeats)
    out["fwd_bwd_images_per_s"] = round(batch / t, 1)
    t, _ = timed(hvp, warmup, repeats)
    out["hvp_seconds"] = float(f"{t:.4g}")
    return out


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lenet", default=os.path.join(ROOT, "..", "shared", "fixtures", "fmnist-lenet", "lenet.onnx"))
    p.add_argument("--vgg", default="/tmp/vgg.onnx")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--models", default="lenet,vgg")
    p.add_argument("--dtypes", default="float32,float64")
    args = p.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    lenet = load_onnx_weights(LeNet(), args.lenet).eval()
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
        "batch": args.batch,
        "repeats": args.repeats,
        "statistic": "median",
        "lenet_check": check_lenet(lenet, os.path.dirname(os.path.abspath(args.lenet)), args.data),
        "models": {},
    }
    print(f"lenet check: {json.dumps(result['lenet_check'])}", file=sys.stderr)

    for name in args.models.split(","):
        if name == "lenet":
            model, shape = lenet, (1, 28, 28)
        elif name == "vgg":
            if not os.path.exists(args.vgg):
                subprocess.run([sys.executable, os.path.join(HERE, "make_vgg.py"), "--out", args.vgg,
                                "--threads", "1"], check=True)
            model, shape = load_onnx_weights(VGG(batch_norm=False), args.vgg), (3, 32, 32)
        else:
            raise SystemExit(f"unknown model {name!r}; want lenet or vgg")
        entry = {"params": sum(q.numel() for q in model.parameters())}
        for dt in args.dtypes.split(","):
            dtype = {"float32": torch.float32, "float64": torch.float64}.get(dt)
            if dtype is None:
                raise SystemExit(f"unknown dtype {dt!r}; want float32 or float64")
            t0 = time.perf_counter()
            # Bench a copy so the float64 conversion does not change the float32 model.
            entry[dt] = bench_model(copy.deepcopy(model), shape, dtype, args.batch, args.warmup, args.repeats, args.seed)
            print(f"{name} {dt}: {json.dumps(entry[dt])} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
        result["models"][name] = entry
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
