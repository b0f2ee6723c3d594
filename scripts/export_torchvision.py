#!/usr/bin/python3
"""Export torchvision classifiers to ONNX with random, seeded weights.

Uses Debian's python3-torch, python3-torchvision and python3-onnx
(apt-get install python3-torch python3-torchvision python3-onnx); no
download: the weights are random (torch.manual_seed), which is enough for
speed, memory and operator coverage. Accuracy claims stay on trained models.
Weights torchvision initialises to zero (ViT's head) are drawn at random too,
so that no model's logits are identically zero.

    scripts/export_torchvision.py --out models                 # the 14 classifiers, opsets 13 and 17
    scripts/export_torchvision.py --out models --models resnet18,mobilenet_v2 --opsets 17
    scripts/export_torchvision.py --out models --models resnet18 --dynamic   # height and width dynamic too

Each model is written as NAME-opsetK.onnx (NAME-opsetK-dynamic.onnx with
--dynamic); existing files are kept unless --force. The batch axis is
always dynamic, as exporters usually leave it. Progress goes to stderr.
"""

import argparse
import os
import sys
import time

ALL = [
    "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
    "regnet_y_400mf", "shufflenet_v2_x1_0", "squeezenet1_1", "densenet121",
    "googlenet", "mnasnet0_5", "convnext_tiny", "vit_b_16", "swin_t",
]


def build(name):
    import torch
    import torchvision

    torch.manual_seed(0)
    kwargs = {}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "init_weights": True}
    m = getattr(torchvision.models, name)(weights=None, **kwargs)
    # torchvision zero-initialises some weights (ViT's classification head):
    # every logit would be 0 and any comparison of outputs vacuous. Give
    # them seeded random values at the scale of the other heads (std 0.01).
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0, 0.01)
    m.eval()
    return m


def export(name, opset, out, dynamic, force):
    import torch

    suffix = "-dynamic" if dynamic else ""
    path = os.path.join(out, f"{name}-opset{opset}{suffix}.onnx")
    if os.path.exists(path) and not force:
        print(f"export: {path} exists, kept", file=sys.stderr)
        return path
    t0 = time.time()
    m = build(name)
    x = torch.zeros(1, 3, 224, 224)
    axes = {0: "batch"}
    if dynamic:
        axes = {0: "batch", 2: "height", 3: "width"}
    tmp = path + ".tmp"
    # Not under torch.no_grad(): with gradients enabled torch 1.13 keeps
    # nn.MultiheadAttention off its fused fast path, which has no ONNX export.
    torch.onnx.export(
        m, x, tmp, opset_version=opset, input_names=["x"], output_names=["logits"],
        dynamic_axes={"x": axes, "logits": {0: "batch"}}, do_constant_folding=True,
    )
    os.replace(tmp, path)
    print(f"export: {path} ({time.time() - t0:.1f} s)", file=sys.stderr)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--models", default=",".join(ALL), help="comma-separated torchvision model names")
    ap.add_argument("--opsets", default="13,17", help="comma-separated ONNX opsets")
    ap.add_argument("--dynamic", action="store_true", help="declare height and width dynamic as well")
    ap.add_argument("--force", action="store_true", help="overwrite existing files")
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        sys.exit(f"export: {e}; install Debian's python3-torch python3-torchvision python3-onnx")
    os.makedirs(a.out, exist_ok=True)
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    for n in names:
        if n not in ALL:
            sys.exit(f"export: unknown model {n!r}; known: {', '.join(ALL)}")
    for n in names:
        for op in a.opsets.split(","):
            export(n, int(op), a.out, a.dynamic, a.force)


if __name__ == "__main__":
    main()
