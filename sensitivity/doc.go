// Package sensitivity computes and stores how much each quantizable layer's
// loss suffers at each weight bit width: the table of DESIGN.md (sens.yaml).
//
// Metrics: hessian (HAWQ: Tr(H_i)/n_i · ||Q_b(W_i)-W_i||^2), quadratic (the
// second-order Taylor change of the loss for the actual quantization error,
// g·ΔW + ½ ΔW·H·ΔW), fisher (empirical Fisher along ΔW), and direct (the
// measured loss increase when only that layer is quantized).
//
// Invariants: a Table that passed Validate has unique layer names, finite
// non-negative omegas and costs, and an omega for every candidate bit
// width; the same inputs and seed produce a byte-identical table.
package sensitivity
