#!/usr/bin/python3
"""Build a VGG-style CNN for 32x32x3 inputs as ONNX, for benchmarks only.

Usage (system Python with PyTorch 1.13):

    /usr/bin/python3 scripts/make_vgg.py [--out /tmp/vgg.onnx] [--input /tmp/vgg_input.npy]
                                         [--labels /tmp/vgg_labels.npy] [--batch 256] [--seed 1]

Architecture (3x3 convolutions with padding 1, ReLU, 2x2 max pooling):

    conv64 conv64 pool  conv128 conv128 pool  conv256 conv256 pool  flatten(4096) fc256 ReLU fc10

about 2.2M parameters and 154M multiply-accumulates per 32x32 image. The network is built with
BatchNormalization after every convolution; weights are He-initialized from --seed and the
BatchNormalization statistics are then set from one batch of random inputs, so that activations
keep a sensible scale through the depth (as in a trained network, and unlike a purely random one
whose activations grow or vanish). It is exported in eval mode, where torch folds every
BatchNormalization into its convolution, so the ONNX graph has only Conv, Relu, MaxPool, Flatten
and Gemm nodes (opset 13, input "input" float32 [N,3,32,32] with dynamic N, output "logits" [N,10]).
The weights are meaningless: the model is for timing and for exercising the engine at a realistic
size, never for accuracy. Nothing is committed: benchmark code runs this script when it needs it.

Also written: --input, a float32 [batch,3,32,32] batch of N(0,1) inputs, and --labels, int64
[batch] uniform labels in [0,10), both from --seed. Same seed and thread count, same files.

As a library, `VGG` and `load_onnx_weights` are imported by scripts/bench_torch.py.
"""

import argparse
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn

CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, "M"]


class VGG(nn.Module):
    """VGG-style network for [N,3,32,32]; with batch_norm=False it is the folded (ONNX) form."""

    def __init__(self, batch_norm=True, num_classes=10):
        super().__init__()
        layers = []
        cin = 3
        for v in CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            layers.append(nn.Conv2d(cin, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU())
            cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * 4 * 4, 256), nn.ReLU(), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def load_onnx_weights(model, onnx_path):
    """Copy the weights of every Conv and Gemm node of onnx_path, in graph order, into the
    Conv2d and Linear modules of model, in module order. Shapes must match exactly."""
    m = onnx.load(onnx_path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    nodes = [n for n in m.graph.node if n.op_type in ("Conv", "Gemm")]
    mods = [mod for mod in model.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    if len(nodes) != len(mods):
        raise ValueError(f"{onnx_path}: {len(nodes)} Conv/Gemm nodes; the torch model has {len(mods)} layers")
    for node, mod in zip(nodes, mods):
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0:
                raise ValueError(f"{onnx_path}: node {node.name}: want Gemm with transA=0, transB=1")
        for name, tensor_name in zip(("weight", "bias"), node.input[1:3]):
            value = torch.from_numpy(init[tensor_name].copy())
            param = getattr(mod, name)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"{onnx_path}: node {node.name} {name} shape {tuple(value.shape)}; "
                                 f"the torch layer has {tuple(param.shape)}")
            with torch.no_grad():
                param.copy_(value)
    return model


def build(seed, calib_batch=256):
    """He-initialized VGG with BatchNormalization statistics from one random batch, in eval mode."""
    torch.manual_seed(seed)
    model = VGG(batch_norm=True)
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            nn.init.uniform_(mod.bias, -0.1, 0.1)
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.uniform_(mod.weight, 0.5, 1.5)
            nn.init.uniform_(mod.bias, -0.1, 0.1)
            mod.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(torch.randn(calib_batch, 3, 32, 32))
    return model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/vgg.onnx")
    p.add_argument("--input", default="/tmp/vgg_input.npy")
    p.add_argument("--labels", default="/tmp/vgg_labels.npy")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = build(args.seed)
    torch.onnx.export(
        model, torch.zeros(1, 3, 32, 32), args.out,
        opset_version=13, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    onnx.checker.check_model(onnx.load(args.out), full_check=True)

    rng = np.random.RandomState(args.seed)
    x = rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    y = rng.randint(0, 10, size=args.batch).astype(np.int64)
    np.save(args.input, x)
    np.save(args.labels, y)

    # The folded export must compute what the BatchNormalization model computes.
    folded = load_onnx_weights(VGG(batch_norm=False), args.out).eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x[:16]))
        got = folded(torch.from_numpy(x[:16]))
    diff = float((want - got).abs().max())
    scale = float(want.abs().max())
    # BN folding reassociates float32 products: a few ulps of the largest logit.
    if diff > 1e-4 * max(scale, 1.0):
        raise SystemExit(f"{args.out}: folded model differs from the BN model by {diff:.3g} (logits up to {scale:.3g})")
    n_params = sum(q.numel() for q in folded.parameters())
    print(f"wrote {args.out} ({n_params} parameters, folded-vs-BN max logit diff {diff:.2g}), "
          f"{args.input} {x.shape}, {args.labels} {y.shape}", file=sys.stderr)


if __name__ == "__main__":
    main()
