#!/usr/bin/python3
"""PyTorch's exact Gauss-Newton traces of an ONNX CNN, timed, for mpsearch's GGN benchmark.

Usage (system Python with PyTorch 1.13 and functorch):

    /usr/bin/python3 scripts/bench_ggn_torch.py --model testdata/vgg-fmnist/model.onnx
        [--data /usr/share/datasets/fashion-mnist] [--images 1024] [--batch 256]
        [--mean 0.2860 --std 0.3530] [--threads 1] [--dtype float32]

Computes, for every Conv/Gemm weight W_l (BatchNormalization folded into the preceding Conv, as
mpsearch's engine does at import), the trace of the Gauss-Newton block of the softmax
cross-entropy over the first --images test images (t10k-images-idx3-ubyte.gz):

    (1/N) sum_n sum_c p_nc ||grad_{W_l} CE(z_n, c)||^2

exactly: per batch and class c, the per-sample gradients of CE(z_n, c) by functorch's
vmap(grad(...)) (PyTorch's standard exact per-sample gradients), weighted by the softmax p_nc.
The supported graph is a chain of Conv, BatchNormalization, Relu, MaxPool, Flatten and Gemm
(the VGG-style and LeNet fixtures). Prints one JSON object on stdout: seconds (the trace
computation only, after loading), images, threads, dtype, and traces (layer name -> trace, in
graph order); cpu_seconds is the process CPU time of the same computation (the figure to compare
on a loaded machine). Same inputs, same output up to floating-point summation order.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F
from functorch import grad, vmap


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def load_chain(path):
    """Returns the graph as a list of (op, name, attributes, param indices) and the parameters."""
    m = onnx.load(path)
    init = {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    ops, params, names = [], [], []
    for node in m.graph.node:
        a = attrs(node)
        if node.op_type in ("Conv", "Gemm"):
            w = init[node.input[1]]
            b = init[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0] if node.op_type == "Conv" or a.get("transB", 0) else w.shape[-1])
            if node.op_type == "Gemm" and not a.get("transB", 0):
                w = w.T
            ops.append((node.op_type, node.name, a, len(params)))
            params += [w, b]
            names.append(node.name)
        elif node.op_type == "BatchNormalization":
            kind, name, _, i = ops[-1]
            if kind != "Conv":
                sys.exit(f"{node.name}: BatchNormalization must follow a Conv")
            scale, bias, mean, var = (init[x] for x in node.input[1:5])
            s = scale / np.sqrt(var + a.get("epsilon", 1e-5))
            params[i] = params[i] * s[:, None, None, None]
            params[i + 1] = (params[i + 1] - mean) * s + bias
        elif node.op_type in ("Relu", "MaxPool", "Flatten"):
            ops.append((node.op_type, node.name, a, -1))
        else:
            sys.exit(f"{node.name}: operator {node.op_type} is not supported by this script")
    return ops, params, names


def make_forward(ops):
    def forward(params, x):
        for kind, _, a, i in ops:
            if kind == "Conv":
                p = a.get("pads", [0, 0, 0, 0])
                if p[0] != p[2] or p[1] != p[3]:
                    sys.exit("asymmetric padding is not supported")
                x = F.conv2d(x, params[i], params[i + 1], stride=tuple(a.get("strides", [1, 1])),
                             padding=(p[0], p[1]), groups=a.get("group", 1))
            elif kind == "Gemm":
                x = F.linear(x, params[i], params[i + 1])
            elif kind == "Relu":
                x = F.relu(x)
            elif kind == "MaxPool":
                k = a["kernel_shape"]
                x = F.max_pool2d(x, tuple(k), stride=tuple(a.get("strides", k)))
            elif kind == "Flatten":
                x = torch.flatten(x, a.get("axis", 1))
        return x
    return forward


def load_images(folder, n, mean, std):
    with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    x = raw.reshape(-1, 1, 28, 28)[:n].astype(np.float64) / 255.0
    return (x - mean) / std


def ggn_traces(forward, params, x, batch):
    widx = list(range(0, len(params), 2))
    traces = torch.zeros(len(widx), dtype=params[0].dtype)

    def sample_loss(ps, xs, c):
        z = forward(ps, xs.unsqueeze(0))
        return F.cross_entropy(z, c.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    with torch.no_grad():
        for lo in range(0, x.shape[0], batch):
            xb = x[lo:lo + batch]
            with torch.no_grad():
                p = torch.softmax(forward(params, xb), dim=1)
            for c in range(p.shape[1]):
                cls = torch.full((xb.shape[0],), c, dtype=torch.long)
                g = per_sample(params, xb, cls)
                for j, i in enumerate(widx):
                    sq = g[i].flatten(1).pow(2).sum(1)
                    traces[j] += (p[:, c] * sq).sum()
    return traces / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--mean", type=float, default=0.2860)
    ap.add_argument("--std", type=float, default=0.3530)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dt = getattr(torch, args.dtype)
    ops, params, names = load_chain(args.model)
    params = [torch.tensor(p, dtype=dt) for p in params]
    x = torch.tensor(load_images(args.data, args.images, args.mean, args.std), dtype=dt)
    t0, c0 = time.perf_counter(), time.process_time()
    tr = ggn_traces(make_forward(ops), params, x, args.batch)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "images": int(x.shape[0]), "threads": args.threads,
                      "dtype": args.dtype, "torch": torch.__version__,
                      "traces": {n: float(v) for n, v in zip(names, tr)}}))


if __name__ == "__main__":
    main()
