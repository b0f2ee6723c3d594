// Package sensitivity computes and stores how much each quantizable layer's
// loss suffers at each weight bit width: the table of DESIGN.md (sens.yaml).
//
// Metrics: hessian (HAWQ: Tr(H_i)/n_i · ||Q_b(W_i)-W_i||^2), quadratic (the
// second-order Taylor change of the loss for the actual quantization error,
// g·ΔW + ½ ΔW·H·ΔW), fisher (empirical Fisher along ΔW), and direct (the
// measured loss increase when only that layer is quantized).
//
// Traces: exact Gauss-Newton traces (network.Pass.GGNTraces: one backward
// pass per class, per-sample gradient norms from the batch), Hutchinson or
// Hutch++ (package hessian); TraceAuto picks by predicted cost
// (ChooseTrace).
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
// non-negative omegas and costs, and an omega for every candidate bit
// width; the same inputs and seed produce a byte-identical table.
package sensitivity
