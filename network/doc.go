// Package network is mpsearch's float engine (float64 tensors): it builds an executable
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
// Precision (precision.go). Options.Precision F32 runs the matrix
// products of Conv, ConvTranspose, Gemm and MatMul — forward, backward and
// tangents — through sgemm (blas32, OpenBLAS with cgo) on float32 copies
// of their operands with float32 accumulation; a convolution's weights are
// converted once per call, not once per sample, and a product with fewer
// than f32MinMACs multiply-adds per value it would convert runs in float64
// (a choice by shape alone, so still deterministic). Tensors between ops, every
// other op and the losses stay float64, so F32 changes only the rounding of
// the products (within 1e-4 of the largest output on the conformance cases
// and the fixture LeNet). F64, the zero value, is the exact reference that
// finite-difference and R-operator tests use; the commands default to F32.
// OpenBLAS runs single-threaded: SetBLASThreads spreads a large product's
// fixed tiles (blas.go) over goroutines, so results at either precision do
// not depend on the thread count (OpenBLAS's own sgemm threading changes
// the rounding).
//
// Infer reuses memory (infer.go): element-wise ops write over an input
// that dies at that node when no other value shares its memory, and Conv
// (and a unary op that cannot run in place) writes into arrays of values
// already dropped by the pass. A pass hands its arrays to the next pass of
// the same Network (a sync.Pool of arenas, one per concurrent pass; an
// arena keeps only the arrays its last pass released, and the collector
// empties the pool when passes stop): activations then come from pages
// already mapped. An op marked fillOp writes every value of its output and
// gets unzeroed memory (Conv sets each sample or plane to its bias or
// first product, as added to zeros); TestInferPoisonedArena fills that
// memory with NaN to catch a wrong mark. Without a hook, Infer runs a
// SiLU (a Sigmoid whose output only the next node, a Mul by the
// Sigmoid's input, reads) as one loop, x·sigmoid(x), the same product of
// the same two values as the two nodes. The values Infer returns and the
// caller's inputs are never in an arena; a hook must not keep the values
// it is shown after their node.
// InferAllocHook takes an AllocHook, whose replacements of node inputs
// (simulated activation quantization) come from the same arena, or are
// written over the input itself when it dies at that node, and go back to
// the arena after the node. The element-wise loops on this path (Relu,
// Clip, Sigmoid, the depthwise kernel) select bits instead of branching
// and keep each value's operations and their order, so outputs are those
// of the plain loops bit for bit (NaN payloads aside, which the order a
// compiler gives a commutative add decides). Exponentials (Sigmoid and
// its derivative, softmax, Tanh/Elu/Mish/Erf/Gelu/Softplus derivatives)
// come in blocks from kernels.Exp, Sigmoid and SigmoidPair, which are
// math.Exp's bits on vector lanes (kernels/doc.go); the vecExp switch
// turns them back into the math.Exp loops for tests and benchmarks.
//
// Directional derivatives per sample (directional.go, persample.go):
// LayerDirectionalDots gives <∇_W L_s, D_j> for every layer, sample s and
// direction D_j of the layer's weight after one backward pass, from each
// sample's weight gradient (δ_s times the sample's columns for a Conv, a
// depthwise correlation, A_sᵀΔ_s for a MatMul on sequences, Δ·D_j for
// rows), not from k operator tangents; it equals the tangent form within
// 1e-9 relative in F64 (directional_test.go keeps that as the reference).
//
// At import, BatchNormalization nodes that follow a Conv or Gemm are folded
// into its weights (Network.Model is the rewritten model); nodes whose
// inputs are all constants are evaluated once.
//
// Inputs that only configure an op (Pow's exponent when constant, Resize's
// roi/scales/sizes, the axes of reductions) are ConstInputs and never
// differentiated; Resize reads its scales or sizes at run time when they
// are not constants. ConvTranspose runs on Conv's im2col/col2im machinery
// as the adjoint of a convolution. Selections (Max, Min, ReduceMax,
// ReduceMin, MaxPool) send gradients to the first element reaching the
// extreme.
//
// Shapes. The data input's shape comes from the model, with dynamic
// dimensions other than the batch axis resolved by Options.InputShapes
// (the --input-shape flag); an unresolved one is an error naming the flag.
// Build then walks the nodes once in order and runs each on zero data at
// two probe batch sizes, 1 and 2 (build.go). The batch-1 pass gives every
// intermediate shape (Layer shapes and MACs come from it). Values computed
// from shapes only — the outputs of Shape and Size and of every node whose
// run-time inputs are such values (Gather, Concat, Unsqueeze, Cast, integer
// arithmetic, Equal, Where, Range, ConstantOfShape, ScatterND...) — are
// folded to constants when both probe passes give the same tensor: they do
// not depend on the batch size. The others (the batch size read by
// Shape→Gather(0) for ViT's reshapes and class-token Expand, ShuffleNet's
// channel-shuffle targets) stay nodes, evaluated per pass on small tensors,
// so only the batch axis stays free. A node whose builder needs a constant
// input that is such a per-pass value (Reshape's target, Expand's shape...)
// or an integer tensor becomes a deferredOp, which builds the op from the
// pass's values each Forward; differentiation goes through the op so
// built, and the inputs so read get no gradient. A constant input computed
// from float data is still an error. Graphs with several data inputs (the
// ONNX node cases) are not probed: nothing is folded beyond all-constant
// nodes and every constant-needing node whose inputs are run-time values
// is deferred (its float ones then get no gradient: such graphs are for
// ForwardAll).
//
// The second probe pass runs only the nodes that Shape or Size read from
// (and shape values), so models without shape arithmetic pay one probe;
// its data values are never read, only their shapes, so Conv, Gemm and
// MatMul give zeros of their output shape there instead of computing.
// Folding trusts that a shape value equal at batch sizes 1 and 2 is equal
// at every batch size, which holds for the arithmetic exporters write
// (products, sums and quotients of dimensions, comparisons with -1).
//
// Integers and booleans are float64 values, exact below 2^53; constants
// beyond the int64 range saturate (INT64_MAX Slice ends). Build infers
// element types to pick integer semantics where they differ: Div of two
// integer tensors truncates, as ONNX Runtime does. Ops may have several
// outputs (Split, a MultiOp); one-output ops are run through singleOp.
//
// Forward-only passes (infer.go). Forward keeps every value and op state
// for Backward, HVP and Tangents. Infer (and InferHook) runs the same ops
// in the same order and returns only the output, bit-identical to
// Forward's, dropping each value after its last consumer (a per-node
// release list computed once by Build) and every op state at once, so its
// memory is that of the widest cut of the graph, not of all activations;
// it checks the context before every node. ActivationBytesPerSample and
// InferBatch size forward-only batches from the layer shapes.
//
// Invariants:
//   - inputs that are indices, conditions or shapes (NonDiffInputs) get no
//     gradient, like constant inputs;
//   - ops never modify their inputs; shape ops (Reshape, Flatten, Squeeze,
//     Unsqueeze, Identity, Dropout) return views sharing the input's data,
//     so callers must not modify outputs in place either;
//   - a Network's parameters (Params) are its own copies: changing them
//     changes later passes and nothing else;
//   - results are deterministic for a given BLAS and thread count.
package network
