#!/usr/bin/python3
"""Train a multilayer perceptron with large fully connected layers on Fashion-MNIST.

Usage (from the repository root, with the system Python that has PyTorch 1.13):

    /usr/bin/python3 scripts/train_mlp_fmnist.py --out models/mlp-fmnist [--hidden 2048]
        [--data /usr/share/datasets/fashion-mnist] [--epochs 2] [--threads 2] [--seed 1]

Architecture: flatten 28*28 = 784, fc 784->H, ReLU, fc H->H, ReLU, fc H->H, ReLU, fc H->10
(H = 2048 by default: 10,004,490 parameters, 10 MB of int8 weights; --hidden 1024: 2,913,290). It is the model of issue 13's
latency-budget search: at batch 1 each layer is one row times a large weight matrix, where the
time follows the weight bytes and narrower weights are faster. The file is 40 MB, so it is not
kept in testdata/: the latency benchmarks of package pipeline read it from MPSEARCH_MLP_DIR
(BenchmarkPredictedVsMeasuredInterleaved, BenchmarkPredictedSteps).

Training, export and the checks are scripts/train_vgg_fmnist.py's (Adam, one-cycle schedule,
batch 128; the ONNX export checked against an independent float64 numpy evaluation).
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_demo import run_onnx_numpy  # noqa: E402
from train_vgg_fmnist import train_and_export  # noqa: E402

HIDDEN = 2048


class MLPFashion(nn.Module):
    """28x28x1 -> 10 logits through three hidden layers of HIDDEN units."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = nn.Linear(HIDDEN, HIDDEN)
        self.fc4 = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc4(F.relu(self.fc3(x)))


def main():
    global HIDDEN
    if "--hidden" in sys.argv:
        i = sys.argv.index("--hidden")
        HIDDEN = int(sys.argv[i + 1])
        del sys.argv[i:i + 2]
    train_and_export(MLPFashion, "mlp-fmnist", 1e-3, "train_mlp_fmnist.py",
                     __doc__.split("\n\n")[0], run_onnx_numpy)


if __name__ == "__main__":
    main()
