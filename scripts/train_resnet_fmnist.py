#!/usr/bin/python3
"""Train a small residual CNN on Fashion-MNIST for mpsearch's metric evidence (issue 14).

Usage (from the repository root, with the system Python that has PyTorch 1.13):

    /usr/bin/python3 scripts/train_resnet_fmnist.py [--data /usr/share/datasets/fashion-mnist]
                                                    [--out testdata/resnet-fmnist] [--epochs 2]
                                                    [--threads 2] [--seed 1]

Architecture (every convolution 3x3 with padding 1 and followed by BatchNormalization; 16
quantizable layers; every residual block has an identity shortcut, so its two convolutions form a
branch whose output is added to the block's input before the ReLU):

    stem   conv 1->16, ReLU, maxpool2                                  28 -> 14
    stage1 2 blocks of [conv16, ReLU, conv16] + identity, ReLU          14x14
    down1  conv 16->32 stride 2, ReLU                                   14 -> 7
    stage2 2 blocks of [conv32, ReLU, conv32] + identity, ReLU           7x7
    down2  conv 32->64 stride 2, ReLU                                    7 -> 4
    stage3 2 blocks of [conv64, ReLU, conv64] + identity, ReLU           4x4
    global average pool, fc 64->10                                     (219,050 parameters)

The downsampling convolutions sit between the stages (not inside a block), so that every shortcut
is an identity: the residual branches are what the additive sensitivity proxy finds hardest
(issue 14). Trained with Adam and a one-cycle schedule (batch 128) on 2 CPU threads, reading the IDX
files with gzip + numpy (nothing is downloaded; the IDX reader, the normalization and the
accuracy helper are shared with scripts/train_demo.py). Normalization: x = (pixel/255 - 0.2860)/0.3530.

Writes into --out:

  model.onnx  opset 13, input "input" float32 [N,1,28,28] (dynamic N), output "logits" [N,10];
              exported in eval mode with inference-mode BatchNormalization nodes kept (the engine
              folds them at import); checked with onnx.checker and against an independent float64
              numpy evaluation of the graph (this script's own evaluator, which also runs Add and
              GlobalAveragePool) on the first --check test images.
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
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_vgg_fmnist import train_and_export  # noqa: E402  (the shared training loop and export)


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout))


class Block(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))): a basic residual block with an identity shortcut."""

    def __init__(self, c):
        super().__init__()
        self.a = conv_bn(c, c)
        self.b = conv_bn(c, c)

    def forward(self, x):
        return F.relu(x + self.b(F.relu(self.a(x))))


class ResNetFashion(nn.Module):
    """28x28x1 -> 10 logits; see the module docstring for the layer list."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 16)
        self.stage1 = nn.Sequential(Block(16), Block(16))
        self.down1 = conv_bn(16, 32, stride=2)
        self.stage2 = nn.Sequential(Block(32), Block(32))
        self.down2 = conv_bn(32, 64, stride=2)
        self.stage3 = nn.Sequential(Block(64), Block(64))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem(x)), 2)
        x = self.stage1(x)
        x = self.stage2(F.relu(self.down1(x)))
        x = self.stage3(F.relu(self.down2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run_onnx_numpy(m, x):
    """Evaluate the exported graph with plain numpy (float64), independently of torch.

    Supports exactly the ops this script exports (Conv, BatchNormalization, Relu, MaxPool, Add,
    GlobalAveragePool, Flatten, Gemm) and raises on anything else, so a change of export surfaces
    here.
    """
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x.astype(np.float64)
    for node in m.graph.node:
        a = _attrs(node)
        ins = [env[i] for i in node.input if i]
        if node.op_type == "Conv":
            w = ins[1]
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
        elif node.op_type == "Add":
            y = ins[0] + ins[1]
        elif node.op_type == "MaxPool":
            k = a["kernel_shape"]
            s = a.get("strides", [1, 1])
            if any(a.get("pads", [0, 0, 0, 0])) or a.get("ceil_mode", 0) or k != s:
                raise ValueError(f"{node.name}: only non-overlapping unpadded MaxPool supported here")
            n, c, h, wd = ins[0].shape
            oh, ow = h // k[0], wd // k[1]
            y = ins[0][:, :, :oh * k[0], :ow * k[1]].reshape(n, c, oh, k[0], ow, k[1]).max(axis=(3, 5))
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
    train_and_export(ResNetFashion, "resnet-fmnist", 4e-3, "train_resnet_fmnist.py",
                     __doc__.split("\n\n")[0], run_onnx_numpy)


if __name__ == "__main__":
    main()
