// Package hessian estimates per-block curvature of a loss from exact
// Hessian-vector products: the trace of every diagonal block H_bb
// (Hutchinson's estimator and a Hutch++ variance-reduced variant, with
// standard errors and a stopping rule) and the dominant eigenvalue of every
// block (power iteration or Lanczos). In mpsearch a block is one layer's
// weight tensor, and these numbers are HAWQ's layer sensitivities.
//
// The package sees only an Oracle: the parameter dimension, a partition of
// (part of) the parameters into named blocks, and batched products H V for
// K directions at a time, so the engine can run them as matrix-matrix work.
// It never sees a network; MatrixOracle wraps an explicit symmetric matrix
// for tests and examples.
//
// # Estimators
//
// Hutchinson draws one global Rademacher probe v per sample (±1 on every
// block parameter, 0 outside the blocks) and takes v_b·(Hv)_b as block b's
// sample: unbiased for Tr(H_bb), since the cross terms v_b·H_bc v_c have
// mean zero, so one product serves all blocks. The cross terms do add
// variance: a block of small curvature coupled to blocks of large curvature
// needs many probes. Each block keeps a running mean and the standard error
// s/sqrt(m) (Welford; s the sample standard deviation with m-1).
//
// HutchPlusPlus removes an exactly computed low-rank part first and runs
// Hutchinson on the deflated remainder; see its documentation for the
// construction and why products cannot be shared between per-block
// sketches. Cost model, in products (one product = one direction):
//
//	Hutchinson                 m
//	HutchPlusPlus, global      8 + 2*SketchSize + m'
//	HutchPlusPlus, per block   SketchSize + sum_b min(SketchSize, Len_b) + m'
//
// where m' (residual probes) is typically far below m on decaying spectra.
// Measured products to reach 2% relative error on every block with the
// default options except 32 probes per pass (BenchmarkTraceProducts, fixed
// seed; eigenvalues c*i^-p rotated by a random orthogonal matrix; the decay
// cases also scale their blocks to different curvatures):
//
//	case          params  blocks  spectrum        plain  global  per-block
//	decay2000x5     2000       5  i^-1.5          40928     104        224
//	decay600x40      600      40  i^-1.5       >100000*     136        664
//	slow600x5        600       5  i^-0.5             96     104        224
//
//	* stopped at MaxProbes = 100000 with a worst relative error of 2.5%.
//
// Hutch++ pays a fixed price for its sketch, so on flat or slowly decaying
// spectra, where plain Hutchinson needs only about a hundred probes, it
// gains nothing or costs more; Hessians of trained networks have a few
// large eigenvalues and a long tail, the case it is built for. Global deflation is the default because its cost
// does not grow with the number of blocks; per-block deflation pays about
// SketchSize products per block up front and suits a handful of large
// blocks only. Many small blocks are also where plain Hutchinson is
// weakest: each block's samples carry the cross terms of all other blocks.
//
// # Stopping rule
//
// After MinProbes probes and after every pass of ProbesPerPass probes, the
// estimate stops when every block's relative error StdErr/|Trace| is at most
// Tol, or at MaxProbes. When a block's trace is near zero its relative
// error is undefined, so it is measured against an absolute floor instead:
// max(|Trace|, FloorFraction * Len * mean |trace| per parameter over all
// blocks). With the default FloorFraction 0.01, a block whose curvature per
// parameter is below 1% of the average is estimated to Tol of that 1%
// level, which is ample for ranking layers. A block whose samples are all
// zero (no curvature, no coupling) has zero standard error and converges.
//
// # Invariants
//
//   - Same oracle, options and Seed give bit-identical results; random
//     numbers come from math/rand/v2 PCG streams derived from Seed, and
//     every loop runs in block order.
//   - Estimators never print; progress goes to an optional callback.
//   - A cancelled context stops work before the next oracle call; the error
//     wraps ctx.Err(). Oracle errors are wrapped too; non-finite products
//     are reported as errors, not averaged.
//   - Results count every product requested from the oracle.
package hessian
