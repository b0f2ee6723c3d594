// Package demo holds the built-in demonstration model and data that
// `mpsearch search` uses when no model is given: a small Fashion-MNIST CNN in
// ONNX form, a calibration set, a held-out test set and their metadata, all
// embedded in the binary.
//
// The files are produced by scripts/train_demo.py (PyTorch 1.13, fixed seeds)
// and committed; this package only embeds and hands them out. It depends on
// no other package of the project: the CLI turns the bytes into a network and
// datasets.
//
// Invariants of the embedded files (checked by the tests):
//   - model.onnx: opset 13, input "input" float32 [N,1,28,28] with dynamic N,
//     output "logits" [N,10]; Conv, BatchNormalization (inference mode),
//     Relu, MaxPool, Flatten and Gemm nodes.
//   - calib.npz and test.npz: array "x" float32 [N,1,28,28] of images already
//     normalized as (pixel/255 - mean)/std with the mean and std of meta.json,
//     and array "y" int64 [N] of labels in [0,10). calib.npz holds the first
//     512 Fashion-MNIST training images (its first 256 equal the fmnist-lenet
//     fixture's calib.npy), test.npz the first 1000 test images.
//   - meta.json: see Metadata.
//
// Every accessor returns a fresh copy, so callers may modify what they get.
package demo
