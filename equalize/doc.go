// Package equalize is cross-layer equalization (Nagel et al. 2019,
// "Data-Free Quantization Through Weight Equalization and Bias
// Correction", section 4.1): a rewrite of a float model that balances the
// per-channel weight ranges of consecutive layers without changing the
// function the model computes, so that quantizing the weights (and the
// activations between them) loses less.
//
// Chains. A pair is a first layer A (Conv, Gemm or MatMul) whose output
// reaches a second layer B (Conv, Gemm or MatMul, as B's data input 0)
// through nothing or through ops that commute with a positive scale per
// channel (passThrough: Relu, LeakyRelu, MaxPool, AveragePool,
// GlobalAveragePool, GlobalMaxPool, Identity, Dropout; Flatten with axis 1
// from a Conv to a Gemm/MatMul, where channel c is the columns c·F to
// c·F+F-1, F the spatial positions). Every value on the way has exactly
// one reader (not Add, Concat, a second consumer or a graph output), and
// A's weight and bias and B's weight are initializers read by that node
// alone, with a bias of one value per channel (a bias that other nodes
// share, or that reaches A through Identity nodes as torch.onnx writes
// equal folded biases, is copied into a new initializer A alone reads,
// named "<A>.equalized_bias"). Clip (ReLU6) stops a chain:
// Clip(s·x, 0, 6) ≠ s·Clip(x, 0, 6), so a MobileNetV2 keeps only its
// linear projection → expansion pairs. A grouped or depthwise B has input
// channel i in group i/(C/group); a depthwise layer's channel i is both
// its input and output channel, so it is the B of one pair and the A of
// the next.
//
// Scaling. For each pair and channel i, with r1 = max|w| over A's output
// channel i and r2 = max|w| over B's input channel i (the symmetric
// ranges of the project's weight quantizer), s = sqrt(r1/r2): A's channel
// (weights and bias) is divided by s and B's input channel multiplied by
// s, leaving both ranges at sqrt(r1·r2). A channel with a zero range on
// either side is left alone. Pairs are equalized in node order, sweep
// after sweep, until no factor of a sweep differs from 1 by more than Tol
// (or MaxSweeps; Report.Converged says which), as the paper iterates.
//
// Invariants: Model never modifies its input (the copy shares the
// tensors it does not rescale); the result is a pure function of the model
// (node order, no randomness); the float function is unchanged up to
// float64 rounding (the tests compare logits of the fixtures and
// torchvision models before and after, in float64). It is meant for a
// network's Model, BatchNormalization already folded (folding after
// equalizing would undo it); the job applies it once after loading, so
// ranges, Hessians, sensitivities, the integer engine and the export all
// see the equalized weights. Bias absorption (the paper's 4.2) is not done.
package equalize
