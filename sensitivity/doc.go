// Package sensitivity computes and stores how much each quantizable layer's
// loss suffers at each weight bit width: the table of DESIGN.md (sens.yaml).
//
// Metrics: hessian (HAWQ: Tr(H_i)/n_i · ||Q_b(W_i)-W_i||^2), quadratic (the
// second-order Taylor change of the loss for the actual quantization error,
// g·ΔW + ½ ΔW·H·ΔW), fisher (empirical Fisher along ΔW), and direct (the
// measured loss change when only that layer's weights go to b bits).
//
// # The direct metric
//
// direct(ℓ, b) = L(ℓ at b bits, every other layer at 8) − L(every layer at
// 8), where L is the calibration loss (cross-entropy with the labels, or KL
// divergence from the float model's outputs) of the model run on the
// integer engine (package intengine): uint8 activations at intengine's
// quantization points (the input, every layer, Add, Concat and float
// fallback output; ranges observed on the calibration data), per-channel
// symmetric weights, integer kernels. It is the quantized model the
// pipeline exports and evaluates, so the metric measures exactly what
// deployment runs. The value is signed: a configuration whose loss falls
// below the all-8-bit model's keeps its negative value (Table.Validate and
// the search accept negative omegas), and the 8-bit cell is exactly 0 (it
// is the baseline itself, not measured again). It equals, bit for bit, the
// same losses computed from intengine.Reference, the float64 simulated
// quantization of each configuration (directint_test.go).
//
// Prefix reuse (directint.go): a configuration differs from the all-8-bit
// model in one layer only, so the steps before that layer compute the same
// codes. Every mini-batch is cut into chunks of directChunk samples; for
// each chunk the all-8-bit program runs once, stopped at each layer's step
// in turn (intengine.Prefix), and every cell of that layer continues from
// the tensors live there (a WithLayerBits variant's RunFrom): the prefix is
// computed once per chunk, only the suffix once per cell, and memory holds
// two workspaces per worker, whatever the number of layers. Chunks run on
// Config.Threads workers (0: every CPU); the logits of a mini-batch are
// assembled in sample order and its losses summed in batch order, so the
// table does not depend on the thread count.
//
// Before (and with Config.DirectEngine EngineFloat) the metric was measured
// on the float engine: every layer's input fake-quantized to uint8, one
// layer's weights fake-quantized, relative to the model with only the
// activations quantized, and clamped at 0. A model the integer engine
// refuses to compile (an unsupported graph pattern, a bias beyond int32)
// is still measured that way, with a note in the progress details. There,
// when its predicted cost (one forward pass per cell of the whole table:
// cells × multiply-adds per sample × samples) is over Config.DirectBudget
// (DefaultDirectBudget, 10^13) and Config.Metric was left to its default,
// the direct metric is skipped and the omega metric is fisher (else
// quadratic); a progress line says why (budget.go). The integer engine's
// direct metric and an asked-for direct omega are never skipped.
//
// Traces: exact Gauss-Newton traces (network.Pass.GGNTraces: one backward
// pass per class, per-sample gradient norms from the batch), Hutchinson or
// Hutch++ (package hessian); TraceAuto picks by predicted cost
// (ChooseTrace), and computes none when that cost (pass units × the
// network's multiply-adds per sample × samples) is over
// Config.TraceBudget (DefaultTraceBudget, 10^12) and the omega metric is
// not hessian: the table then has trace "none" and no hessian metric, and
// a progress line says why. The rule reads only the model, the data size
// and the settings, so tables stay reproducible.
//
// Sharding (shard.go): the work is a fixed sequence of cells (the global
// cell of traces, eigenvalues and the hessian metric; a layer for
// quadratic and fisher; a layer and bit width for direct). Config.Shard/
// Shards computes only one shard's cells and marks the table; Merge of all
// shards equals the unsharded table byte for byte. Read refuses shard
// tables; ReadShard accepts them.
//
// Progress goes to Config.Progress per cell with elapsed time and ETA; the
// package never prints. A cancelled context stops every stage between
// cells, mini-batches or products and Compute returns an error wrapping
// ctx.Err() and no table.
//
// Invariants: a Table that passed Validate has unique layer names, finite
// omegas (negative only where a metric is a signed loss change, as direct
// is), finite non-negative deltas and costs, and an omega for every
// candidate bit width; the same inputs and seed produce a byte-identical
// table whatever the thread count.
package sensitivity
