#!/usr/bin/python3
"""Train a small depthwise-separable (MobileNet-like) CNN on Fashion-MNIST for cross-layer equalization's evidence (issue 11).

Usage (from the repository root, with the system Python that has PyTorch 1.13):

    /usr/bin/python3 scripts/train_dwsep_fmnist.py [--data /usr/share/datasets/fashion-mnist]
                                                   [--out testdata/dwsep-fmnist] [--epochs 8]
                                                   [--threads 1] [--seed 1]

Architecture (every convolution followed by BatchNormalization and ReLU; depthwise 3x3 with
padding 1, pointwise 1x1; 10 quantizable layers, 4 of them depthwise):

    stem   conv3x3 1->16 stride 2                               28 -> 14
    block1 dw3x3 16,            pw 16->32                       14x14
    block2 dw3x3 32 stride 2,   pw 32->64                       14 -> 7
    block3 dw3x3 64,            pw 64->64                       7x7
    block4 dw3x3 64 stride 2,   pw 64->128                      7 -> 4
    global average pool, fc 128->10

ReLU (not ReLU6) throughout, so every Conv -> BatchNorm -> ReLU -> Conv is a chain that
cross-layer equalization can rescale without changing the float function (ReLU is positively
homogeneous; ReLU6 is not). Folding BatchNormalization into a depthwise convolution multiplies
each of its 9-weight channels by its own gamma/sigma, which is what leaves depthwise networks
with badly balanced per-channel ranges (Nagel et al. 2019). Trained with Adam and a one-cycle
schedule (batch 128) on --threads CPU threads (the shared training loop and export of
scripts/train_vgg_fmnist.py). Normalization: x = (pixel/255 - 0.2860)/0.3530.

Writes into --out:

  model.onnx  opset 13, input "input" float32 [N,1,28,28] (dynamic N), output "logits" [N,10];
              exported in eval mode with inference-mode BatchNormalization nodes kept (the engine
              folds them at import); checked with onnx.checker and against an independent float64
              numpy evaluation of the graph (this script's own evaluator, which runs grouped
              convolutions) on the first --check test images.
  meta.json   float test accuracy on all 10000 test images (PyTorch, float32), parameter count,
              normalization, how it was trained.

Reproducible on the same machine and thread count: torch and numpy seeds are fixed and the
shuffling order comes from a numpy RandomState.
"""

import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_vgg_fmnist import train_and_export  # noqa: E402  (the shared training loop and export)


def cbr(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups),
            nn.BatchNorm2d(cout), nn.ReLU()]


def dwsep(cin, cout, stride=1):
    return cbr(cin, cin, 3, stride, groups=cin) + cbr(cin, cout, 1)


class DWSepFashion(nn.Module):
    """28x28x1 -> 10 logits; see the module docstring for the layer list."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            *cbr(1, 16, 3, stride=2),
            *dwsep(16, 32), *dwsep(32, 64, 2), *dwsep(64, 64), *dwsep(64, 128, 2),
            nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv_numpy(x, w, b, a):
    """Grouped 2-D convolution in float64 numpy (NCHW, weights [M, C/group, kh, kw])."""
    pads = a.get("pads", [0, 0, 0, 0])
    strides = a.get("strides", [1, 1])
    group = a.get("group", 1)
    if a.get("dilations", [1, 1]) != [1, 1]:
        raise ValueError("dilated Conv not supported here")
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    co, cig, kh, kw = w.shape
    n, _, h, wd = xp.shape
    oh = (h - kh) // strides[0] + 1
    ow = (wd - kw) // strides[1] + 1
    out = np.zeros((n, co, oh, ow))
    cog = co // group
    for g in range(group):
        xs = xp[:, g * cig:(g + 1) * cig]
        ws = w[g * cog:(g + 1) * cog]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + strides[0] * oh:strides[0], j:j + strides[1] * ow:strides[1]]
                out[:, g * cog:(g + 1) * cog] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def run_onnx_numpy(m, x):
    """Evaluate the exported graph with plain numpy (float64), independently of torch.

    Supports exactly the ops this script exports (Conv with groups, BatchNormalization, Relu,
    GlobalAveragePool, Flatten, Gemm) and raises on anything else.
    """
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x.astype(np.float64)
    for node in m.graph.node:
        a = _attrs(node)
        ins = [env[i] for i in node.input if i]
        if node.op_type == "Conv":
            y = conv_numpy(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
        elif node.op_type == "BatchNormalization":
            if len(node.output) != 1 or a.get("training_mode", 0) != 0:
                raise ValueError(f"{node.name}: training-mode BatchNormalization exported")
            xb, scale, bias, mean, var = ins
            eps = a.get("epsilon", 1e-5)
            sh = (1, -1, 1, 1)
            y = (xb - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * scale.reshape(sh) + bias.reshape(sh)
        elif node.op_type == "Relu":
            y = np.maximum(ins[0], 0)
        elif node.op_type == "GlobalAveragePool":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
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


def main():
    # The machine is shared: one thread unless told; 8 epochs (about 3 minutes) unless told.
    for flag, value in (("--threads", "1"), ("--epochs", "8")):
        if flag not in sys.argv:
            sys.argv += [flag, value]
    train_and_export(DWSepFashion, "dwsep-fmnist", 4e-3, "train_dwsep_fmnist.py",
                     __doc__.split("\n\n")[0], run_onnx_numpy)


if __name__ == "__main__":
    main()
