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
// activation byte. A layer the engine runs on these kernels
// (LayerShape.Stream) is predicted with it.
type StreamModel struct {
	Bits            int     `yaml:"bits"`
	OverheadNs      float64 `yaml:"overhead_ns"`
	NsPerChannel    float64 `yaml:"ns_per_channel"`
	NsPerWeightByte float64 `yaml:"ns_per_weight_byte"`
	NsPerOutput     float64 `yaml:"ns_per_output"`
	NsPerActivation float64 `yaml:"ns_per_activation"`
	Fit             *Fit    `yaml:"fit,omitempty"`
}

// streamRowGroup is the number of activation rows the stream kernels take
// per pass over the weights (kernels' streamRows).
const streamRowGroup = 4

func (m *StreamModel) coef() []float64 {
	return []float64{m.OverheadNs, m.NsPerChannel, m.NsPerWeightByte, m.NsPerOutput, m.NsPerActivation}
}

// streamFeatures are the terms of StreamModel for rows x k by k x n at
// kernel width kb.
func streamFeatures(kb, rows, k, n int) []float64 {
	wbytes := float64(k) * float64(n) * float64(kb) / 8
	passes := float64((rows + streamRowGroup - 1) / streamRowGroup)
	return []float64{1, float64(n), passes * wbytes, float64(rows) * float64(n), float64(rows) * float64(k)}
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

// streamSweep are the shapes of the stream sweep: 1 to 16 rows against
// weights of 16 KiB to 16 MiB.
func streamSweep(quick bool) []gemmShape {
	rows, ks, ns := []int{1, 2, 4, 8, 16}, []int{256, 1024, 4096}, []int{64, 256, 1024, 4096}
	if quick {
		rows, ns = []int{1, 4, 16}, []int{64, 1024, 4096}
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
		p.Stream = append(p.Stream, StreamModel{Bits: kb, OverheadNs: c[0], NsPerChannel: c[1], NsPerWeightByte: c[2], NsPerOutput: c[3], NsPerActivation: c[4], Fit: fit})
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
