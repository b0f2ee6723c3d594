package costmodel

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// PassPoint is one point of ColdModel.Pass: a loop of passes over Bytes
// of weights paid Fraction of the cold time per weight byte (0: the
// weights stay in cache between passes, as in the hot figures; 1: each
// pass reads them from memory as slowly as a call after an eviction).
type PassPoint struct {
	Bytes    float64 `yaml:"bytes"`
	Fraction float64 `yaml:"fraction"`
}

// passMiB are the working sets, in MiB of int8 weights, measurePass times
// passes over: from the L2 of current cores (1 to 2 MiB) past the
// last-level cache of a Zen 5 CCD (32 MiB).
var passMiB = []int{1, 2, 4, 8, 16, 32, 64, 128}

// passLayerK is the side of the one-row 8-bit stream layers measurePass
// chains: K = N = 1024, 1 MiB of weights each.
const passLayerK = 1024

// passHotFraction is the largest fraction of a curve point
// (ColdModel.Pass) at which a pass counts as hot: its weights stay in the cache from one inference
// to the next. In the shipped Zen 5 profile passes over 1 to 16 MiB paid
// 0.01 to 0.08 of the cold time per byte, over 32 MiB 0.27 and over
// 128 MiB 0.61.
const passHotFraction = 0.1

// PassShare is the share of the profile's cold terms (ColdModel) that the
// layers and operations of a whole-model pass pay (ColdShare).
type PassShare struct {
	// Panels is the share of the cold terms of layers on the tile GEMM
	// (NsPerWeightByte) and of Add tables (AddTableNs): 0 or 1.
	Panels float64
	// Stream is the share of StreamNsPerWeightByte that layers on the
	// stream kernels pay.
	Stream float64
}

// ColdShare returns the share of the profile's cold terms that a
// whole-model pass of the layers at bits (nil: 8 bits everywhere) and the
// operations ops pays. Up to what a loop of passes keeps in the cache
// (ColdModel.cacheBytes, or cpu.l2_bytes without a curve), counting the
// bytes of its weights (coldWeightBytes) and of its Adds' tables, it pays
// none. Beyond it layers on the tile GEMM and Adds pay their cold terms in
// full, as ResNet50's steps did in whole runs (BenchmarkPredictedSteps),
// and layers on the stream kernels the curve's share at those bytes
// (interpolated in log2 of the bytes; its last point beyond it; in full
// without a curve): the curve was measured on them, and one-row layers
// that read their weights in sequence from memory pass after pass pay
// less than one call after an eviction (a 784->4096->4096->4096->10 MLP,
// 37 MB of 8-bit weights, was predicted 2.0 times its measured time at 8
// bits and 2.6 at 4 with the full term, step by step). Without a cold model, or a known cache size, it returns zero.
func ColdShare(p *Profile, shapes []LayerShape, bits []int, ops []OpShape) PassShare {
	if p.Cold == nil {
		return PassShare{}
	}
	limit := max(float64(p.CPU.L2Bytes), p.Cold.cacheBytes())
	total := passBytes(p, shapes, bits, ops)
	if limit <= 0 || total <= limit {
		return PassShare{}
	}
	if len(p.Cold.Pass) == 0 {
		return PassShare{Panels: 1, Stream: 1}
	}
	return PassShare{Panels: 1, Stream: p.Cold.fraction(total)}
}

// passBytes is the bytes a pass reads that the cold model prices: the
// layers' weights at their kernel widths and 64 KiB per Add table.
func passBytes(p *Profile, shapes []LayerShape, bits []int, ops []OpShape) float64 {
	var total float64
	for i, s := range shapes {
		b := 8
		if bits != nil && i < len(bits) {
			b = bits[i]
		}
		kb, err := KernelBits(b)
		if err != nil || s.Validate() != nil {
			continue
		}
		total += coldWeightBytes(s, kb, 1, p.CPU.KernelISA)
	}
	for _, o := range ops {
		if o.Op == OpAdd {
			total += addTableBytes
		}
	}
	return total
}

// fraction interpolates the Pass curve at bytes (linear in log2 of the
// bytes, its end values beyond its ends).
func (c *ColdModel) fraction(bytes float64) float64 {
	pts := c.Pass
	if bytes <= pts[0].Bytes {
		return pts[0].Fraction
	}
	for i := 1; i < len(pts); i++ {
		if bytes <= pts[i].Bytes {
			a, b := pts[i-1], pts[i]
			t := math.Log2(bytes/a.Bytes) / math.Log2(b.Bytes/a.Bytes)
			return a.Fraction + t*(b.Fraction-a.Fraction)
		}
	}
	return pts[len(pts)-1].Fraction
}

// cacheBytes is the largest working set of the Pass curve whose passes
// are hot (fraction at most passHotFraction, and every smaller one too);
// 0 without a curve.
func (c *ColdModel) cacheBytes() float64 {
	var b float64
	for _, q := range c.Pass {
		if q.Fraction > passHotFraction {
			break
		}
		b = q.Bytes
	}
	return b
}

// validatePass checks the curve: bytes positive and increasing, fractions
// in [0, 1].
func validatePass(pts []PassPoint) error {
	for i, q := range pts {
		switch {
		case !(q.Bytes > 0) || math.IsInf(q.Bytes, 0):
			return fmt.Errorf("cold.pass[%d].bytes is %v; want a positive number", i, q.Bytes)
		case i > 0 && q.Bytes <= pts[i-1].Bytes:
			return fmt.Errorf("cold.pass[%d].bytes %v is not above the point before (%v); want increasing bytes", i, q.Bytes, pts[i-1].Bytes)
		case !(q.Fraction >= 0 && q.Fraction <= 1):
			return fmt.Errorf("cold.pass[%d].fraction is %v; want 0 to 1", i, q.Fraction)
		}
	}
	return nil
}

// measurePass measures the Pass curve on this CPU. It chains one-row
// 8-bit stream layers of 1 MiB (passLayerK) into passes over each of
// passMiB, runs each pass until its weights are where a loop of
// inferences keeps them, and times them (fastestPass); the fastest pass per weight byte, less that of a pass over the first layer
// alone (hot: its weights stay in the L2), over the cold extra per byte of
// that layer after an eviction (coldExtra), is the fraction, clamped to
// [0, 1]. The fastest, as in coldExtra: interference only adds time.
func measurePass(ctx context.Context, mo MeasureOptions, rng *rand.Rand) ([]PassPoint, error) {
	layers := make([]*streamRunner, passMiB[len(passMiB)-1])
	for i := range layers {
		r, err := newStreamRunner(8, 1, passLayerK, passLayerK, mo.Threads, rng)
		if err != nil {
			return nil, err
		}
		layers[i] = r
	}
	bytesPer := float64(passLayerK * passLayerK)
	// The hot time: a pass over one layer, which stays in the L2, timed
	// as the other passes are.
	th, err := fastestPass(ctx, layers[:1], mo)
	if err != nil {
		return nil, err
	}
	extra, err := coldExtra(ctx, layers[0].run, func() { touch(layers[0].a); touch(layers[0].dst) }, mo)
	if err != nil {
		return nil, err
	}
	if extra <= 0 {
		return nil, fmt.Errorf("costmodel: a 1 MiB stream layer ran no slower after an eviction (%.0f ns); measure again on a quieter machine", extra)
	}
	hotPerByte, coldPerByte := float64(th)/bytesPer, extra/bytesPer
	pts := make([]PassPoint, 0, len(passMiB))
	for _, mib := range passMiB {
		best, err := fastestPass(ctx, layers[:mib], mo)
		if err != nil {
			return nil, err
		}
		f := (float64(best)/(bytesPer*float64(mib)) - hotPerByte) / coldPerByte
		pts = append(pts, PassPoint{Bytes: bytesPer * float64(mib), Fraction: roundSig(min(1, max(0, f)), 3)})
	}
	return monotone(pts), nil
}

// passRepeats is the fewest passes fastestPass times (a pass over 128 MiB
// takes 3 to 6 ms).
const passRepeats = 15

// fastestPass runs the layers in order twice to settle the caches, then
// max(mo.Repeats, passRepeats) more times, and returns the fastest of
// those passes.
func fastestPass(ctx context.Context, layers []*streamRunner, mo MeasureOptions) (time.Duration, error) {
	pass := func() error {
		for _, l := range layers {
			if err := l.run(); err != nil {
				return err
			}
		}
		return nil
	}
	for range 2 {
		if err := pass(); err != nil {
			return 0, err
		}
	}
	samples, err := timeSingleCalls(ctx, pass, nil, clockOf(mo.Clock), max(mo.Repeats, passRepeats))
	if err != nil {
		return 0, err
	}
	return slices.Min(samples), nil
}

// monotone makes the fractions non-decreasing in bytes (a larger working
// set never keeps more of itself in cache; a lower figure at a larger
// set is noise), raising each to the largest before it.
func monotone(pts []PassPoint) []PassPoint {
	for i := 1; i < len(pts); i++ {
		pts[i].Fraction = max(pts[i].Fraction, pts[i-1].Fraction)
	}
	return pts
}
