// Package quant owns mpsearch's quantizers: uniform symmetric per-channel
// weight quantization (the project's convention, shared with the fixtures),
// asymmetric per-tensor uint8 activation quantization with its calibration,
// dyadic multipliers for integer-only requantization, and simulated
// (fake) quantization of a float network.
//
// Conventions (DESIGN.md):
//   - weights, b bits: qmax = 2^(b-1)-1, per output channel
//     scale = max|w|/qmax (1 for an all-zero channel),
//     q = clamp(roundHalfEven(w/scale), -qmax, qmax). One bit is binary:
//     q = ±1 with scale = mean|w| of the channel.
//   - activations, uint8: lo = min(0, min x), hi = max(0, max x),
//     scale = (hi-lo)/255, zero point = clamp(roundHalfEven(-lo/scale), 0, 255),
//     x̂ = (clamp(roundHalfEven(x/scale)+zp, 0, 255) - zp)·scale.
//   - dyadic multiplier: a positive real M is m·2^-c with m a 31-bit integer.
//
// Invariant: quantizers are pure functions of their inputs (no hidden
// state, no randomness), so simulated results are reproducible bit for bit.
package quant
