package costmodel

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"mpsearch/intengine"
	"mpsearch/kernels"
	"mpsearch/tensor"
)

// ColdModel is what a whole-model pass adds to the hot figures of the
// other models when the pass cannot keep its weights in the cache between
// one inference and the next (ColdShare): each layer then reads its weights
// from memory, and each Add its table of output codes. Both are measured
// by timing the engine's kernels and steps hot and after reading a buffer
// larger than the last-level cache (EvictBytes), with the layer's
// activations read back into the cache before the cold call, as in a pass,
// where the layer before has just written them (measureCold).
//
// Profiles without a cold section (measured before it existed) load with
// a nil Cold: predictions are then the hot figures, as they were.
type ColdModel struct {
	// NsPerWeightByte is the extra time per weight byte a layer reads
	// once per call (the packed panels of GEMMRequant: coldWeightBytes),
	// cold minus hot (coldExtra) over the bytes, median over coldShapes.
	NsPerWeightByte float64 `yaml:"ns_per_weight_byte"`
	// StreamNsPerWeightByte is the same per packed weight byte of a layer
	// on the stream kernels (kernels.GEMMStreamRequant, one row), which
	// read their weights from memory faster than GEMMRequant its panels,
	// median over coldStreamShapes.
	StreamNsPerWeightByte float64 `yaml:"stream_ns_per_weight_byte"`
	// AddTableNs is the extra time of an Add step whose 64 KiB table of
	// output codes (intengine's addStep) was evicted: cold minus hot
	// (coldExtra) on a small Add.
	AddTableNs float64 `yaml:"add_table_ns"`
	// Points is the number of layer shapes NsPerWeightByte was measured
	// on (coldShapes).
	Points int `yaml:"points"`
	// Pass is the share of the cold time per weight byte that a loop of
	// passes pays against the bytes of its weights (measurePass): where
	// the last-level cache keeps them from one inference to the next, a
	// pass pays almost none of it. ColdShare takes the cold terms
	// beyond the largest hot point (cacheBytes); layers on the stream kernels
	// pay the curve's share there. Empty in profiles
	// measured before it existed: the step is then at the L2.
	Pass []PassPoint `yaml:"pass,omitempty"`
}

var requiredCold = []string{"ns_per_weight_byte", "stream_ns_per_weight_byte", "add_table_ns"}

func (c *ColdModel) nums() []struct {
	name string
	v    float64
} {
	return []struct {
		name string
		v    float64
	}{{"cold.ns_per_weight_byte", c.NsPerWeightByte}, {"cold.stream_ns_per_weight_byte", c.StreamNsPerWeightByte}, {"cold.add_table_ns", c.AddTableNs}}
}

// addTableBytes is the size of an Add step's table of output codes (one
// byte per pair of input codes).
const addTableBytes = 256 * 256

// coldWeightBytes is the number of weight bytes layer s reads once per
// call at kernel width kb: the packed panels of GEMMRequant (K rounded up
// to 4, N to whole 16-channel panels, two bytes per weight for 8-bit
// weights without VNNI) per group, the packed rows of the stream kernels,
// the taps of a depthwise layer.
func coldWeightBytes(s LayerShape, kb, batch int, isa string) float64 {
	switch {
	case streams(s, kb, batch):
		return float64(s.K) * float64(s.N) * float64(kb) / 8
	case s.Depthwise:
		return float64(s.Conv.C*max(s.Groups, 1)) * float64(s.Conv.KH*s.Conv.KW)
	}
	elem := 1
	if kb == 8 && isa != kernels.ISAVNNI {
		elem = 2
	}
	kp := (s.K + 3) &^ 3
	np := (s.N + tileN - 1) / tileN * tileN
	return float64(max(s.Groups, 1)) * float64(kp) * float64(np) * float64(elem)
}

// coldLayerNs is the cold term of layer s in a pass that pays share of
// the cold terms (ColdShare).
func (p *Profile) coldLayerNs(s LayerShape, kb, batch int, share PassShare) float64 {
	if p.Cold == nil {
		return 0
	}
	rate := share.Panels * p.Cold.NsPerWeightByte
	if streams(s, kb, batch) {
		rate = share.Stream * p.Cold.StreamNsPerWeightByte
	}
	if rate == 0 {
		return 0
	}
	return rate * coldWeightBytes(s, kb, batch, p.CPU.KernelISA)
}

// streams reports whether layer s runs on the stream kernels at kernel
// width kb and batch batch (the engine's dispatch rule, as predictNs).
func streams(s LayerShape, kb, batch int) bool {
	return s.Conv == nil && s.Stream && batch*s.M <= intengine.StreamMaxRows(kb)
}

// coldOpNs is the cold term of operation o in a pass that pays share of
// the cold terms (ColdShare).
func (p *Profile) coldOpNs(o OpShape, share PassShare) float64 {
	if p.Cold == nil || o.Op != OpAdd {
		return 0
	}
	return share.Panels * p.Cold.AddTableNs
}

// PredictInPass is Predict for a layer of a whole-model pass: it adds the
// share (ColdShare of the model) of the time of reading the layer's
// weights from memory (ColdModel.NsPerWeightByte, StreamNsPerWeightByte).
func PredictInPass(p *Profile, s LayerShape, bits, batch int, share PassShare) (time.Duration, error) {
	ns, err := predictNs(p, s, bits, batch)
	if err != nil {
		return 0, err
	}
	kb, _ := KernelBits(bits)
	ns += p.coldLayerNs(s, kb, max(batch, 1), share)
	return time.Duration(math.Round(ns)), nil
}

// PredictOpsInPass is PredictOps for the operations of a whole-model
// pass: it adds the share (ColdShare) of ColdModel.AddTableNs per Add.
func PredictOpsInPass(p *Profile, ops []OpShape, batch int, share PassShare) (time.Duration, error) {
	ns, err := predictOpsNs(p, ops, batch)
	if err != nil {
		return 0, err
	}
	for _, o := range ops {
		ns += p.coldOpNs(o, share)
	}
	return time.Duration(math.Round(ns)), nil
}

// coldShapes are the GEMMRequant calls NsPerWeightByte is measured on:
// ResNet50's and ViT's layers with the most weights per row of output
// (0.25 to 2.3 MiB of int8 weights, more than the activations they read).
var coldShapes = []gemmShape{{49, 4608, 512}, {49, 512, 2048}, {49, 2048, 512}, {196, 2304, 256}, {197, 768, 3072}}

// coldStreamShapes are the one-row stream calls StreamNsPerWeightByte is
// measured on: a classifier of 1000 classes on 2048 features (ResNet50's)
// at 8 and 4 bits, and a 4096 x 4096 layer at 8 bits (1 to 16 MiB).
var coldStreamShapes = []struct{ kb, k, n int }{{8, 2048, 1000}, {4, 2048, 1000}, {8, 4096, 4096}}

// coldAddSide is the plane side of the Add measureCold times (16 channels
// of 16 x 16 codes: 12 KiB of inputs and output, less than a fifth of
// the table).
const coldAddSide = 16

// measureCold measures the ColdModel on this CPU: each coldShapes call
// (8-bit kernel) and coldStreamShapes call hot, then mo.Repeats times
// alone after evicting the caches and reading its activations back
// (coldExtra); and an engine Add
// step (intengine.Model.StepRunner) hot and cold the same way, whose
// inputs are too small to matter next to its table.
func measureCold(ctx context.Context, mo MeasureOptions, rng *rand.Rand, step func()) (*ColdModel, error) {
	c := &ColdModel{Points: len(coldShapes)}
	var per []float64
	for _, sh := range coldShapes {
		r, err := newRunner(sh.rows, sh.k, sh.n, 8, mo.Threads, rng)
		if err != nil {
			return nil, err
		}
		extra, err := coldExtra(ctx, r.run, func() { touch(r.src); touch(r.out) }, mo)
		if err != nil {
			return nil, fmt.Errorf("costmodel: cold %dx%dx%d GEMM: %w", sh.rows, sh.k, sh.n, err)
		}
		s := LayerShape{Name: "cold", M: sh.rows, K: sh.k, N: sh.n}
		per = append(per, max(0, extra)/coldWeightBytes(s, 8, 1, kernels.ISA()))
		if step != nil {
			step()
		}
	}
	slices.Sort(per)
	c.NsPerWeightByte = roundSig(per[len(per)/2], 4)
	per = per[:0]
	for _, sh := range coldStreamShapes {
		r, err := newStreamRunner(sh.kb, 1, sh.k, sh.n, mo.Threads, rng)
		if err != nil {
			return nil, err
		}
		extra, err := coldExtra(ctx, r.run, func() { touch(r.a); touch(r.dst) }, mo)
		if err != nil {
			return nil, fmt.Errorf("costmodel: cold %dx%d %d-bit stream: %w", sh.k, sh.n, sh.kb, err)
		}
		per = append(per, max(0, extra)/(float64(sh.k)*float64(sh.n)*float64(sh.kb)/8))
		if step != nil {
			step()
		}
	}
	slices.Sort(per)
	c.StreamNsPerWeightByte = roundSig(per[len(per)/2], 4)
	add, err := coldAddExtra(ctx, mo, rng)
	if err != nil {
		return nil, err
	}
	c.AddTableNs = roundSig(max(0, add), 4)
	if step != nil {
		step()
	}
	if c.Pass, err = measurePass(ctx, mo, rng); err != nil {
		return nil, err
	}
	if step != nil {
		step()
	}
	return c, nil
}

// coldAddExtra returns the cold minus hot time of an engine Add step of
// 16 channels of coldAddSide^2 random codes, in nanoseconds.
func coldAddExtra(ctx context.Context, mo MeasureOptions, rng *rand.Rand) (float64, error) {
	const ch = opsChannels
	b := newOpsNet(ch, coldAddSide, rng)
	sum := b.node("Add", []string{b.conv1x1("x", ch, ch), "x"})
	out := b.conv1x1(sum, ch, 4)
	x := tensor.New(1, ch, coldAddSide, coldAddSide)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	model, err := b.compile(ctx, out, x)
	if err != nil {
		return 0, err
	}
	run, release, err := model.StepRunner(ctx, x, sum[:len(sum)-len("_out")])
	if err != nil {
		return 0, err
	}
	defer release()
	// The inputs (2 x 4 KiB) are left to the eviction: reading them back
	// would need the engine's buffers; their two sequential streams cost
	// a few hundred nanoseconds next to the table's scattered lines.
	return coldExtra(ctx, run, func() {}, mo)
}

// coldExtra times f hot (timeCall) and cold: mo.Repeats single calls, each
// after evictCaches and warm (which reads back what a pass would have in
// cache); it returns the fastest cold call less the fastest hot sample, in
// nanoseconds. The fastest, since interference only adds time and a cold
// call is exposed to it the most: other processes' memory traffic slows
// its reads from memory (at a load average of 4.6 to 4.9 the medians gave
// 0.097 ns per weight byte and 49.6 µs per Add table, against 0.049 and
// 29.8 µs at 2.5, which ResNet50's steps in whole runs confirmed).
func coldExtra(ctx context.Context, f func() error, warm func(), mo MeasureOptions) (float64, error) {
	hot := mo
	hot.Cold = false
	th, err := timeCall(ctx, f, hot)
	if err != nil {
		return 0, err
	}
	samples, err := timeSingleCalls(ctx, f, func() error { evictCaches(); warm(); return nil }, clockOf(mo.Clock), mo.Repeats)
	if err != nil {
		return 0, err
	}
	return float64(slices.Min(samples) - th.Min), nil
}

// touchSink keeps touch's reads from being optimized away.
var touchSink uint8

// touch reads one byte per 64-byte line of b, bringing it into the cache.
func touch(b []uint8) {
	var s uint8
	for i := 0; i < len(b); i += 64 {
		s += b[i]
	}
	touchSink += s
}

// RefitCold measures the ColdModel of a measured profile p on this CPU
// (measureCold, on p's clock and thread count) and sets it, keeping every
// other model: for a profile measured before the cold model existed. p
// must describe this CPU's kernels.
func RefitCold(ctx context.Context, p *Profile, opt ProfileOptions) error {
	return refit(p, func(q *Profile, _ sweep, mo MeasureOptions) error {
		c, err := measureCold(ctx, mo, rand.New(rand.NewPCG(opt.Seed, 0x636f6c64)), nil)
		q.Cold = c
		return err
	})
}

// RefitPass measures the pass curve of a measured profile p's cold model
// on this CPU (measurePass, on p's clock and thread count) and sets it,
// keeping every other figure: for a profile measured before the curve
// existed. p must describe this CPU's kernels and have a cold model.
func RefitPass(ctx context.Context, p *Profile, opt ProfileOptions) error {
	if p.Cold == nil {
		return fmt.Errorf("costmodel: profile %q has no cold model to add a pass curve to; measure one (RefitCold)", p.Name)
	}
	return refit(p, func(q *Profile, _ sweep, mo MeasureOptions) error {
		pts, err := measurePass(ctx, mo, rand.New(rand.NewPCG(opt.Seed, 0x70617373)))
		c := *p.Cold
		c.Pass = pts
		q.Cold = &c
		return err
	})
}
