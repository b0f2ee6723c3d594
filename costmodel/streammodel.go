package costmodel

import (
	"context"
	"fmt"
	"math/rand/v2"

	"mpsearch/kernels"
)

// StreamModel is the time model of one kernels.GEMMStreamRequant call (the
// small-M kernels that stream weights packed at their width) at one kernel
// width: a constant, ns_per_channel per output channel (requantization
// setup), ns_per_weight_byte per packed weight byte streamed (the weights
// are read once per group of up to streamRows activation rows),
// ns_per_output per requantized output and ns_per_activation per
// activation byte, and ns_per_multirow_weight_byte more per weight byte
// streamed for 2 to 4 rows: one row takes its own kernels, which read two
// groups of panels at once (kernels' streamZ<b>R1G2), and more rows cost
// more per byte than one row (8-bit 1024 x 1024: 11.5 µs at one row, 16.7
// at four; 4-bit 6.8 and 14.9), which one weight term for every row count
// cannot fit. A layer the engine runs on these kernels (LayerShape.Stream)
// is predicted with it.
type StreamModel struct {
	Bits            int     `yaml:"bits"`
	OverheadNs      float64 `yaml:"overhead_ns"`
	NsPerChannel    float64 `yaml:"ns_per_channel"`
	NsPerWeightByte float64 `yaml:"ns_per_weight_byte"`
	NsPerOutput     float64 `yaml:"ns_per_output"`
	NsPerActivation float64 `yaml:"ns_per_activation"`
	// NsPerMultiRowByte is absent (0) in profiles measured before it
	// existed, whose one weight term covered every row count.
	NsPerMultiRowByte float64 `yaml:"ns_per_multirow_weight_byte,omitempty"`
	Fit               *Fit    `yaml:"fit,omitempty"`
}

// streamRowGroup is the number of activation rows the stream kernels take
// per pass over the weights (kernels' streamRows).
const streamRowGroup = 4

func (m *StreamModel) coef() []float64 {
	return []float64{m.OverheadNs, m.NsPerChannel, m.NsPerWeightByte, m.NsPerOutput, m.NsPerActivation, m.NsPerMultiRowByte}
}

// streamCoefNames name coef's terms in the profile.
var streamCoefNames = []string{"overhead_ns", "ns_per_channel", "ns_per_weight_byte", "ns_per_output", "ns_per_activation", "ns_per_multirow_weight_byte"}

// streamFeatures are the terms of StreamModel for rows x k by k x n at
// kernel width kb.
func streamFeatures(kb, rows, k, n int) []float64 {
	wbytes := float64(k) * float64(n) * float64(kb) / 8
	passes := float64((rows + streamRowGroup - 1) / streamRowGroup)
	multi := 0.0
	if rows > 1 {
		multi = passes * wbytes
	}
	return []float64{1, float64(n), passes * wbytes, float64(rows) * float64(n), float64(rows) * float64(k), multi}
}

// streamNs predicts one GEMMStreamRequant call.
func (p *Profile) streamNs(kb, rows, k, n int) (float64, error) {
	for i := range p.Stream {
		if p.Stream[i].Bits == kb {
			return dotS(p.Stream[i].coef(), streamFeatures(kb, rows, k, n)), nil
		}
	}
	return 0, fmt.Errorf("%w: profile %q has no stream model for %d-bit weights; measure it again with 'mpsearch profile'", ErrProfile, p.Name, kb)
}

// streamSweep are the shapes of the stream sweep: 1 to 4 rows (the most
// the engine runs on the stream kernels: intengine.StreamMaxRows) against
// weights of 16 KiB to 16 MiB. Rows beyond those (8 and 16, in profiles
// measured before 2026-12-05 12:00) pulled the fit away from the one-row
// products: it predicted the one-row 1024 x 1024 layers of a
// Fashion-MNIST MLP 1.3 (8 bits) to 1.8 times (4 bits) their time in a
// whole pass (BenchmarkPredictedSteps).
func streamSweep(quick bool) []gemmShape {
	rows, ks, ns := []int{1, 2, 3, 4}, []int{256, 1024, 4096}, []int{64, 256, 1024, 4096}
	if quick {
		rows, ns = []int{1, 4}, []int{64, 1024, 4096}
	}
	var out []gemmShape
	for _, m := range rows {
		for _, k := range ks {
			for _, n := range ns {
				if k*n <= 16<<20 {
					out = append(out, gemmShape{m, k, n})
				}
			}
		}
	}
	return out
}

// measureStream fits a StreamModel per kernel width on
// kernels.GEMMStreamRequant over streamSweep, timed in groups like the
// GEMM sweep.
func (p *Profile) measureStream(ctx context.Context, quick bool, mo MeasureOptions, rng *rand.Rand, step func()) error {
	for _, kb := range ProfileBits {
		var pts []point
		for _, sh := range streamSweep(quick) {
			f := streamFeatures(kb, sh.rows, sh.k, sh.n)
			pts = append(pts, point{f: f, est: f[2] * 0.02, make: func() (func() error, error) {
				r, err := newStreamRunner(kb, sh.rows, sh.k, sh.n, mo.Threads, rng)
				if err != nil {
					return nil, err
				}
				return r.run, nil
			}})
		}
		c, fit, err := measureFit(ctx, pts, mo, step)
		if err != nil {
			return fmt.Errorf("costmodel: fitting the %d-bit stream model: %w", kb, err)
		}
		p.Stream = append(p.Stream, StreamModel{Bits: kb, OverheadNs: c[0], NsPerChannel: c[1], NsPerWeightByte: c[2], NsPerOutput: c[3], NsPerActivation: c[4], NsPerMultiRowByte: c[5], Fit: fit})
	}
	return nil
}

// streamRunner holds the buffers and packed weights of one
// kernels.GEMMStreamRequant call at one kernel width.
type streamRunner struct {
	rows, k int
	w       *kernels.Stream
	r       *runner // for its Requant and zero point
	a, dst  []uint8
	opt     kernels.Options
}

func newStreamRunner(kb, rows, k, n, threads int, rng *rand.Rand) (*streamRunner, error) {
	w := randomStreamWeights(kb, n, k, rng)
	sw, err := kernels.PackStream(w, n, k, kb)
	if err != nil {
		return nil, err
	}
	r, err := newRunner(1, 4, n, 8, threads, rng)
	if err != nil {
		return nil, err
	}
	return &streamRunner{rows: rows, k: k, w: sw, r: r, a: randBytes(rng, rows*k), dst: make([]uint8, rows*n),
		opt: kernels.Options{Threads: threads, Scratch: &kernels.Scratch{}}}, nil
}

func (s *streamRunner) run() error {
	return kernels.GEMMStreamRequant(s.dst, s.a, s.rows, s.k, s.r.zero, s.w, s.r.rq, s.opt)
}

// RefitStream measures again, on this CPU, the stream models of a
// measured profile p (measureStream over streamSweep, on p's clock and
// thread count) and replaces them, keeping every other model: for a
// profile measured before a change of the stream kernels or of their
// sweep. p must describe this CPU's kernels.
func RefitStream(ctx context.Context, p *Profile, opt ProfileOptions) error {
	return refit(p, func(q *Profile, _ sweep, mo MeasureOptions) error {
		q.Stream = nil
		return q.measureStream(ctx, opt.Quick, mo, rand.New(rand.NewPCG(opt.Seed, 0x7374726d)), func() {})
	})
}
