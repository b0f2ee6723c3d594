// Package network is mpsearch's float64 engine: it builds an executable
// graph from an imported ONNX model (package onnx) and runs it forward,
// backward (gradients of every parameter and of the input) and along
// tangents, which gives exact Hessian-vector products by Pearlmutter's
// R-operator (Pass.HVP).
//
// Every node is an Op (op.go): Forward, Backward, Tangent (forward pass on
// K directions at once) and BackwardTangent (backward pass on tangents).
// Weights are ordinary inputs, so parameter gradients are input gradients.
// Dense work (im2col convolution, Gemm, MatMul) goes through gonum's blas64,
// which uses OpenBLAS (gonum.org/v1/netlib) when built with cgo and gonum's
// own BLAS otherwise (CGO_ENABLED=0 or -tags noopenblas).
//
// Inputs that only configure an op (Pow's exponent when constant, Resize's
// roi/scales/sizes, the axes of reductions) are ConstInputs and never
// differentiated; Resize reads its scales or sizes at run time when they
// are not constants. ConvTranspose runs on Conv's im2col/col2im machinery
// as the adjoint of a convolution. Selections (Max, Min, ReduceMax,
// ReduceMin, MaxPool) send gradients to the first element reaching the
// extreme.
//
// At import, BatchNormalization nodes that follow a Conv or Gemm are folded
// into its weights (Network.Model is the rewritten model); nodes whose
// inputs are all constants are evaluated once.
//
// Invariants:
//   - ops never modify their inputs; shape ops (Reshape, Flatten, Squeeze,
//     Unsqueeze, Identity, Dropout) return views sharing the input's data,
//     so callers must not modify outputs in place either;
//   - a Network's parameters (Params) are its own copies: changing them
//     changes later passes and nothing else;
//   - results are deterministic for a given BLAS and thread count.
package network
