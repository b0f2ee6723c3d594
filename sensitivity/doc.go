// Package sensitivity computes and stores how much each quantizable layer's
// loss suffers at each weight bit width: the table of DESIGN.md (sens.yaml).
//
// Metrics: hessian (HAWQ: Tr(H_i)/n_i · ||Q_b(W_i)-W_i||^2), quadratic (the
// second-order Taylor change of the loss for the actual quantization error,
// g·ΔW + ½ ΔW·H·ΔW, signed), fisher (empirical Fisher along ΔW; without
// labels the Fisher information with labels drawn from the model), and direct
// (the measured loss change when only that layer's weights go to b bits,
// signed, with its standard error).
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
// activations quantized. A model the integer engine refuses to compile (an
// unsupported graph pattern, a bias beyond int32) is still measured that
// way, with a note in the progress details. That value is signed too (it
// was clamped at 0 before issue 14), and so is the quadratic metric.
// There, when its predicted cost (one forward pass per cell of the whole
// table: cells × multiply-adds per sample × samples) is over
// Config.DirectBudget (DefaultDirectBudget, 10^13) and Config.Metric was
// left to its default, the direct metric is skipped and the omega metric
// is fisher (else quadratic); a progress line says why (budget.go). The
// integer engine's direct metric and an asked-for direct omega are never
// skipped.
//
// # Standard errors
//
// Every direct cell also records its standard error (Layer.Stderr, per
// metric and width): each mini-batch is cut into chunks of directChunk
// samples, the chunk's share of the loss change (its loss with the
// layer at b bits minus the baseline's, both with the whole data set's
// denominator) is one of U values d_u whose sum is the cell's value, and
// the standard error of that sum is sqrt(U)·sd(d_u) (the sample standard
// deviation, computed by Welford's recurrence in chunk order, so it does
// not depend on the thread count; 0 with a single chunk, and at 8 bits on
// the integer engine, where the cell is the baseline itself). It treats
// the chunks as independent draws; the last chunk of a mini-batch may be
// shorter. The chunking is the integer engine's unit of work, and the
// float engine splits its mini-batch logits the same way. Tables written
// before standard errors existed have none and still read.
//
// # The fisher metric
//
// fisher(ℓ, b) = Σ_s (∇L_s·ΔW_b)² / (2N), ΔW_b = Q_b(W_ℓ) − W_ℓ, over the
// calibration samples s (compute.go, fisherMetric). One forward and one
// backward pass per mini-batch serve every layer: network's
// LayerDirectionalDots forms each sample's weight gradient of a Conv or
// MatMul layer once (one product per sample, the layer's forward
// multiply-adds) and dots it with the k directions, so a pass costs about
// three forward passes whatever k. Its mini-batches are groups of the
// oracle's (fisherbatch.go): the oracle sizes its own for a Hessian-vector
// product in flight (passFactor), fisher holds less (fisherFactor), so it
// takes as many consecutive oracle mini-batches as fit
// OracleOptions.PassBytes (one on ResNet50 at 224², whose pass holds 201
// MiB of values per sample; one by one when the oracle caches its
// passes). The grouping depends on the model, the data size and the
// options, never on Threads; batch sums are added in batch order, and a
// table computed in groups differs from one without only by rounding
// (float64: within 1e-9 relative, fisher_test.go; F32 on ResNet18, groups
// of two: 3.4e-7).
//
// With the KL loss (no labels) the targets are the float model's own
// outputs, so at the float model every sample's gradient of that loss is
// exactly zero, and so was its empirical Fisher: the default omega of
// every unlabelled search was 0 in every cell. There fisher squares the
// gradients of the cross-entropy with one label per sample drawn from the
// float model's output distribution (fisherLosses; the draw depends on
// Config.Seed and the sample's index only): a Monte Carlo estimate of
// ½ΔW·F·ΔW with F the Fisher information, which at the float model is
// also the KL loss's Hessian, so it estimates the quadratic change of the
// KL loss. One draw over a few hundred samples is noisy (on the fixture
// LeNet, 256 images: 0.47-1.85 times the exact quadratic metric per layer
// over six seeds; the mean of eight draws within 30% of it, fisher_test.go);
// pipeline's cache key records the drawn labels, so tables cached with
// the zeros are not read again. A batch whose output gradient is zero in
// every entry adds zero without a backward pass, and the directions (k
// weight-sized arrays per layer) are made only when a batch needs them.
//
// # What the search gets
//
// Table.SearchInput is the one place where a table becomes search input;
// the ILP, the RL agent (which gets the ILP's problem) and the
// refinement's order of measurement in package pipeline all use it. Per
// layer and candidate width b, with v(b) the metric's signed value and
// s(b) its standard error (0 when none is recorded):
//
//  1. noise: if s(b) > 0 and |v(b)| <= NoiseK·s(b) (NoiseK = 2), the value
//     is NoiseK·s(b), the noise bound, instead of v(b): a change that
//     cannot be told from zero is priced at the largest change the
//     measurement could hide, so the ILP never sees "0 cost for 2 bits"
//     from a layer whose quantization moves each sample's loss a lot in
//     both directions; outside the band v(b) is kept, signed;
//  2. monotone in bits, enforced: the value at b is the maximum over the
//     candidate widths b' >= b of step 1's values, so a narrower width is
//     never cheaper than a wider one (a measured inversion is noise or an
//     interaction the joint configuration does not keep, and the ILP
//     would exploit it). SearchInput counts the cells each step changed
//     (Noise, Repaired) so that callers can report them.
//
// The table itself keeps the measured signed values and standard errors
// unchanged.
//
// Traces: exact Gauss-Newton traces (network.Pass.GGNTraces: one backward
// pass per class, per-sample gradient norms from the batch), Hutchinson or
// Hutch++ (package hessian); TraceAuto picks by predicted cost
// (ChooseTrace), and computes none when that cost (pass units × the
// network's multiply-adds per sample × samples) is over
// Config.TraceBudget (DefaultTraceBudget, 10^12) and the omega metric is
// not hessian: the table then has trace "none" and no hessian metric, and
// a progress line says why. The top eigenvalues (Config.Eigen) share the
// budget: power iteration's bound of DefaultEigenMaxIter products is
// over it on ImageNet models (ResNet18 with 64 samples: 7·10^13, 8 GB
// and many minutes before), and they are skipped with a note unless
// Config.EigenAlways (an explicit --eigen). The rules read only the
// model, the data size and the settings, so tables stay reproducible.
//
// Weight rounding: a table records the rounding its metrics measured
// (Table.Quantizer, Config.Weights' method; rtn when nil). CheckQuantizer
// refuses a table measured with another rounding than the one the caller
// will export, and a table with model provenance but no recorded rounding
// (written before it was recorded, when rtn or gptq could have been the
// default); hand-written tables (no model hash) pass. Merge refuses shards
// of different roundings. Likewise bias correction (Table.BiasCorrection:
// Config.Weights is a quant.BiasShifter; CheckBiasCorrection, Merge):
// tables written before it was recorded were measured without it. And
// cross-layer equalization (Table.Equalized, set by the pipeline for a
// network equalized before measuring; CheckEqualized, Merge).
// the activation calibration (Config.ActCalib, the ranges of the direct
// metric's activations on either engine; Table.ActCalib, absent for
// minmax; CheckActCalib, Merge): tables written before it was recorded
// used minmax.
//
// Options in groups: the table's widths are option codes
// (quant.OptionCode), so a cell may be a width with one scale per output
// channel and group of G inputs (6403: 3 bits in groups of 64). Every
// metric measures it through Config.Weights (a source that gives blocked
// codes there); the direct metric then runs on the float engine for every
// cell (the integer engine takes one scale per channel, and cells of one
// table must compare), with a progress note; size_bytes is written for
// every option (quant.OptionSizeBytes: packed weights and 4-byte scales,
// as the export stores them). The monotone repair of SearchInput runs per
// granularity (searchValues).
//
// Sharding (shard.go): the work is a fixed sequence of cells (the global
// cell of traces, eigenvalues and the hessian metric; a layer for
// quadratic and fisher; a layer and bit width for direct). Config.Shard/
// Shards computes only one shard's cells and marks the table; Merge of all
// shards equals the unsharded table byte for byte. Read refuses shard
// tables; ReadShard accepts them.
//
// Progress goes to Config.Progress per cell with elapsed time and ETA; the
// direct metric on the integer engine first reports its setup as stages
// of their own: "ranges" (the float pass that observes the engine's
// activation ranges, one step) and "compile" (one step per cell's
// integer model), so no second of the job goes unreported. Under the KL
// loss the float pass of the targets observes those ranges
// (intengine.RangeObserver), and every layer input's range too, which
// Config.LayerRanges hands to the verifier: the calibration data then
// take one float pass instead of three, with the same ranges bit for bit. The
// package never prints. A cancelled context stops every stage between
// cells, mini-batches or products and Compute returns an error wrapping
// ctx.Err() and no table.
//
// Invariants: a Table that passed Validate has unique layer names, finite
// omegas (negative only where a metric is a signed loss change, as direct
// and quadratic are), finite non-negative deltas, standard errors and
// costs, and an omega for every
// candidate bit width; the same inputs and seed produce a byte-identical
// table whatever the thread count.
package sensitivity
