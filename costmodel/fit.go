package costmodel

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"

	"mpsearch/kernels"
)

// ProfileOptions tunes BuildProfile.
type ProfileOptions struct {
	Name    string // profile name; empty means "measured"
	Threads int    // kernels.Options.Threads; 0 means 1
	// Quick measures a coarser sweep with fewer repeats (about 10 s
	// instead of about 30 s on one core; the fits are noisier).
	Quick bool
	Clock Clock
	Seed  uint64
	// Progress, if set, is called after each measured point.
	Progress func(done, total int)
}

// sweep is the set of shapes BuildProfile measures.
type sweep struct {
	rows, ks, ns []int
	maxMACs      float64
	convC, convH []int
	convK        []int
	maxIm2Col    int
	dwC, dwH     []int
	trM, trN     []int
	copyBytes    int
	repeats      int
	minSample    time.Duration
}

func newSweep(quick bool) sweep {
	if quick {
		return sweep{
			rows: []int{1, 16, 196, 1024, 3136, 12544}, ks: []int{9, 25, 64, 150, 576, 1152, 4608}, ns: []int{6, 10, 16, 64, 128, 256},
			maxMACs: 1 << 28,
			convC:   []int{1, 3, 6, 16, 64}, convH: []int{8, 14, 28}, convK: []int{1, 3, 5},
			maxIm2Col: 2 << 20,
			dwC:       []int{16, 96, 144, 384}, dwH: []int{7, 14, 28, 56},
			trM: []int{16, 100, 196, 784, 1024, 3136, 4096}, trN: []int{6, 16, 48, 64, 256},
			copyBytes: 16 << 20, repeats: 5, minSample: 500 * time.Microsecond,
		}
	}
	return sweep{
		rows: []int{1, 4, 16, 49, 196, 784, 3136, 12544}, ks: []int{9, 27, 72, 150, 576, 1152, 2304, 4608}, ns: []int{6, 16, 48, 128, 256, 512},
		maxMACs: 1 << 29,
		convC:   []int{1, 3, 16, 64, 128}, convH: []int{7, 14, 28, 32}, convK: []int{1, 3, 5},
		maxIm2Col: 4 << 20,
		dwC:       []int{16, 32, 96, 144, 192, 384, 960}, dwH: []int{7, 14, 28, 56, 112},
		trM: []int{16, 49, 64, 100, 196, 784, 1024, 3136, 4096}, trN: []int{6, 16, 48, 64, 256},
		copyBytes: 64 << 20, repeats: 7, minSample: 2 * time.Millisecond,
	}
}

type gemmShape struct{ rows, k, n int }

func (sw sweep) gemmShapes() []gemmShape {
	var out []gemmShape
	for _, m := range sw.rows {
		for _, k := range sw.ks {
			for _, n := range sw.ns {
				if float64(m)*float64(k)*float64(n) <= sw.maxMACs {
					out = append(out, gemmShape{m, k, n})
				}
			}
		}
	}
	return out
}

func (sw sweep) convShapes() []kernels.ConvShape {
	var out []kernels.ConvShape
	for _, c := range sw.convC {
		for _, h := range sw.convH {
			for _, k := range sw.convK {
				for _, s := range []int{1, 2} {
					g := kernels.ConvShape{C: c, H: h, W: h, KH: k, KW: k, StrideH: s, StrideW: s,
						PadTop: k / 2, PadLeft: k / 2, PadBottom: k / 2, PadRight: k / 2}
					oh, ow, err := g.Out()
					if err != nil || oh*ow*c*k*k > sw.maxIm2Col {
						continue
					}
					out = append(out, g)
				}
			}
		}
	}
	return out
}

// ReferenceSizes are the cube sizes of Profile.Reference.
var ReferenceSizes = []int{256, 512, 1024}

// StreamSizes are the k = n sizes of the one-row points of
// Profile.Reference, timed on the streaming small-M kernels
// (kernels.GEMMStream): 1024 (1 MiB of int8 weights, within L2), 4096 (16
// MiB) and 8192 (64 MiB, beyond any cache share of one core), where the
// time follows the weight bytes.
var StreamSizes = []int{1024, 4096, 8192}

// BuildProfile benchmarks the kernels on this CPU over a sweep of GEMM,
// im2col and transpose shapes, timed in groups of different calls run back
// to back (see groupSize), fits the models of Profile to the group medians
// by non-negative least squares on a symmetric relative error (fitNonNeg),
// and measures the copy bandwidth, the call overhead and the reference GEMM
// throughput.
func BuildProfile(ctx context.Context, opt ProfileOptions) (*Profile, error) {
	sw := newSweep(opt.Quick)
	mo, err := MeasureOptions{Threads: opt.Threads, Repeats: sw.repeats, Warmup: 1, MinSample: sw.minSample, Clock: opt.Clock}.norm()
	if err != nil {
		return nil, err
	}
	name := opt.Name
	if name == "" {
		name = "measured"
	}
	p := &Profile{
		Format: Format, Name: name, Source: "measured", CPU: DetectCPU(),
		Threads: mo.Threads, Clock: mo.Clock.String(),
		Created: time.Now().UTC().Format(time.RFC3339), Go: runtime.Version(),
	}
	unlock := lockThread(mo.Clock)
	defer unlock()
	rng := rand.New(rand.NewPCG(opt.Seed, 0x70726f66696c65))
	shapes := sw.gemmShapes()
	convs := sw.convShapes()
	total := len(ProfileBits)*(len(shapes)+len(ReferenceSizes)+len(StreamSizes)) + len(ProfileBits)*len(streamSweep(opt.Quick)) + 2*len(convs) + len(sw.dwShapes()) + len(sw.trM)*len(sw.trN) + 3 + len(coldShapes) + len(coldStreamShapes) + 2
	done := 0
	step := func() {
		done++
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
	}

	// Rough per-point estimates from the analytic model order the points
	// so that each timed group holds calls of similar duration.
	est, err := AnalyticAVX2(AnalyticParams{Name: "estimate", CPU: "estimate", GHz: 3, MemoryGBps: 20})
	if err != nil {
		return nil, err
	}

	// GEMM with requantization, per kernel width.
	for _, kb := range ProfileBits {
		g, _ := est.gemmModel(kb)
		var pts []point
		for _, sh := range shapes {
			f := gemmFeatures(kb, sh.rows, sh.k, sh.n, p.CPU.L2Bytes, p.CPU.KernelISA)
			pts = append(pts, point{f: f[:], est: dotN(g.coef(), f), make: func() (func() error, error) {
				r, err := newRunner(sh.rows, sh.k, sh.n, kb, mo.Threads, rng)
				if err != nil {
					return nil, err
				}
				return r.run, nil
			}})
		}
		c, fit, err := measureFit(ctx, pts, mo, step)
		if err != nil {
			return nil, fmt.Errorf("costmodel: fitting the %d-bit GEMM model: %w", kb, err)
		}
		p.GEMM = append(p.GEMM, GEMMModel{Bits: kb, OverheadNs: c[0], NsPerChannel: c[1], NsPerMAC: c[2], NsPerTile: c[3], NsPerRowTile: c[4],
			NsPerRequantRow: c[5], NsPerRequantScalar: c[6], NsPerScalarRow: c[7], NsPerPack: c[8], NsPerPackScalar: c[9], NsPerWeightByte: c[10], NsPerSpilledByte: c[11], Fit: fit})
	}

	// The small-M stream kernels, per kernel width.
	if err := p.measureStream(ctx, opt.Quick, mo, rng, step); err != nil {
		return nil, err
	}

	// im2col, Im2ColNHWC and the depthwise kernel on one image, and the
	// transpose of one image's output.
	if err := p.measureLayoutKernels(ctx, sw, est, mo, rng, step); err != nil {
		return nil, err
	}

	// Operations between layers.
	if p.Ops, err = measureOps(ctx, mo, rng); err != nil {
		return nil, err
	}
	step()

	// What a pass whose weights leave the cache adds.
	if p.Cold, err = measureCold(ctx, mo, rng, step); err != nil {
		return nil, err
	}

	// Streaming copy bandwidth.
	{
		a, b := make([]byte, sw.copyBytes), make([]byte, sw.copyBytes)
		for i := range a {
			a[i] = byte(i)
		}
		copy(b, a)
		cm := mo
		cm.MinSample = max(mo.MinSample, 20*time.Millisecond)
		t, err := timeCall(ctx, func() error { copy(b, a); return nil }, cm)
		if err != nil {
			return nil, err
		}
		p.MemoryGBps = roundSig(2*float64(sw.copyBytes)/float64(t.Median), 4)
		step()
	}

	// Call overhead: the smallest GEMMRequant.
	{
		r, err := newRunner(1, 4, 16, 8, mo.Threads, rng)
		if err != nil {
			return nil, err
		}
		t, err := timeCall(ctx, r.run, mo)
		if err != nil {
			return nil, err
		}
		p.CallOverheadNs = roundSig(float64(t.Median), 4)
		step()
	}

	// Reference throughput at n^3.
	for _, kb := range ProfileBits {
		for _, size := range ReferenceSizes {
			pt, err := measureGEMMPoint(ctx, kb, size, size, size, mo, rng)
			if err != nil {
				return nil, err
			}
			p.Reference = append(p.Reference, pt)
			step()
		}
	}
	for _, kb := range ProfileBits {
		for _, size := range StreamSizes {
			pt, err := measureStreamPoint(ctx, kb, size, size, mo, rng)
			if err != nil {
				return nil, err
			}
			p.Reference = append(p.Reference, pt)
			step()
		}
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("costmodel: the measured profile is invalid (%w); measure again", err)
	}
	return p, nil
}

// point is one call of a sweep: its model terms, an estimate of its time
// and a constructor of the call (buffers are made only while timed).
type point struct {
	f    []float64
	est  float64
	make func() (func() error, error)
}

// groupSize is the number of different calls timed back to back as one
// sample in a sweep. A model runs different layers one after another, so
// caches and branch predictors never settle on one shape as they do when
// one call is repeated; timing small groups of different calls reproduces
// that, and since the model is linear the group's terms are the sums of its
// calls' terms.
const groupSize = 3

// measureFit times pts with measureGrouped and fits them with fitNonNeg.
// A fit whose median error on its own points exceeds refitMedianErr says
// that the timings, not the model, are off: another process took the
// core's caches or its SMT sibling while some groups were timed (the
// shipped Zen 5 profile of 2026-12-05 03:50 had a channels-last im2col fit
// with a median error of 27% and predicted that kernel 1.3-1.6x slow on
// small channel counts, where a re-measurement of the same sweep fitted
// within 2.5%). Interference only adds time, so the points are timed
// again, up to refitTries times in all, each group keeping its fastest
// median, until the fit is within refitMedianErr. step is called once per
// point, on the first pass only.
func measureFit(ctx context.Context, pts []point, mo MeasureOptions, step func()) ([]float64, *Fit, error) {
	return fitRetrying(func(first bool) ([][]float64, []float64, error) {
		if first {
			return measureGrouped(ctx, pts, mo, step)
		}
		return measureGrouped(ctx, pts, mo, func() {})
	})
}

// fitRetrying is measureFit's loop: measure returns the groups' terms (the
// same every pass) and times.
func fitRetrying(measure func(first bool) ([][]float64, []float64, error)) ([]float64, *Fit, error) {
	xs, ys, err := measure(true)
	if err != nil {
		return nil, nil, err
	}
	c, fit, err := fitNonNeg(xs, ys)
	for try := 1; try < refitTries && err == nil && fit.MedianErr > refitMedianErr; try++ {
		_, again, err2 := measure(false)
		if err2 != nil {
			return nil, nil, err2
		}
		if len(again) != len(ys) {
			return nil, nil, fmt.Errorf("a new pass timed %d groups; want %d", len(again), len(ys))
		}
		for i := range ys {
			ys[i] = min(ys[i], again[i])
		}
		c, fit, err = fitNonNeg(xs, ys)
	}
	return c, fit, err
}

// refitMedianErr and refitTries bound measureFit's re-measurements: the
// GEMM sweeps fit within 3.4-3.9% on a quiet machine and the layout
// kernels' within 2.5-10%.
const (
	refitMedianErr = 0.08
	refitTries     = 3
)

// measureGrouped orders pts by estimated time, times consecutive groups of
// groupSize calls of similar duration, and returns each group's summed terms
// and median time. step is called once per point.
func measureGrouped(ctx context.Context, pts []point, mo MeasureOptions, step func()) ([][]float64, []float64, error) {
	order := make([]int, len(pts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(pts[a].est, pts[b].est) })
	var xs [][]float64
	var ys []float64
	for g0 := 0; g0 < len(order); g0 += groupSize {
		g1 := min(g0+groupSize, len(order))
		sum := make([]float64, len(pts[order[g0]].f))
		var runs []func() error
		for _, i := range order[g0:g1] {
			run, err := pts[i].make()
			if err != nil {
				return nil, nil, err
			}
			runs = append(runs, run)
			for j, v := range pts[i].f {
				sum[j] += v
			}
		}
		t, err := timeCall(ctx, func() error {
			for _, r := range runs {
				if err := r(); err != nil {
					return err
				}
			}
			return nil
		}, mo)
		if err != nil {
			return nil, nil, err
		}
		xs = append(xs, sum)
		ys = append(ys, float64(t.Median))
		for range runs {
			step()
		}
	}
	return xs, ys, nil
}

// measureGEMMPoint times kernels.GEMM (int32 output, activation packing
// included, weight packing excluded) on an m x k by k x n product.
func measureGEMMPoint(ctx context.Context, kb, m, k, n int, mo MeasureOptions, rng *rand.Rand) (GEMMPoint, error) {
	r, err := newRunner(m, k, n, kb, mo.Threads, rng)
	if err != nil {
		return GEMMPoint{}, err
	}
	dst := make([]int32, m*n)
	t, err := timeCall(ctx, func() error {
		return kernels.GEMM(dst, r.src, m, k, r.zero, r.w, r.opt)
	}, mo)
	if err != nil {
		return GEMMPoint{}, err
	}
	gops := 2 * float64(m) * float64(k) * float64(n) / float64(t.Median)
	return GEMMPoint{Bits: kb, M: m, K: k, N: n, GOPS: roundSig(gops, 4)}, nil
}

// randomStreamWeights returns n×k seeded random weights of kernel width
// kb, over the width's whole range (weightRange; binary weights are never
// 0), for timing the stream kernels.
func randomStreamWeights(kb, n, k int, rng *rand.Rand) []int8 {
	lo, hi := weightRange(kb)
	w := make([]int8, n*k)
	for i := range w {
		v := lo + rng.IntN(hi-lo+1)
		if kb == 1 && v == 0 {
			v = 1
		}
		w[i] = int8(v)
	}
	return w
}

// measureStreamPoint times kernels.GEMMStream (int32 output) on one
// activation row against k x n weights of kernel width kb, packed with
// kernels.PackStream; the weights stay in whatever cache holds them between
// calls (hot).
func measureStreamPoint(ctx context.Context, kb, k, n int, mo MeasureOptions, rng *rand.Rand) (GEMMPoint, error) {
	w := randomStreamWeights(kb, n, k, rng)
	sw, err := kernels.PackStream(w, n, k, kb)
	if err != nil {
		return GEMMPoint{}, fmt.Errorf("costmodel: stream point %d x %d: %w", k, n, err)
	}
	a := randBytes(rng, k)
	dst := make([]int32, n)
	opt := kernels.Options{Threads: mo.Threads}
	zero := uint8(rng.IntN(16))
	t, err := timeCall(ctx, func() error {
		return kernels.GEMMStream(dst, a, 1, k, zero, sw, opt)
	}, mo)
	if err != nil {
		return GEMMPoint{}, err
	}
	gops := 2 * float64(k) * float64(n) / float64(t.Median)
	return GEMMPoint{Bits: kb, M: 1, K: k, N: n, GOPS: roundSig(gops, 4)}, nil
}

// MeasureStreamReference measures the one-row points of Profile.Reference
// (kernels.GEMMStream, m = 1, k = n = size) for every kernel bit width at
// each size.
func MeasureStreamReference(ctx context.Context, sizes []int, opt MeasureOptions) ([]GEMMPoint, error) {
	mo, err := opt.norm()
	if err != nil {
		return nil, err
	}
	unlock := lockThread(mo.Clock)
	defer unlock()
	rng := rand.New(rand.NewPCG(opt.Seed, 0x73747265616d))
	var out []GEMMPoint
	for _, kb := range ProfileBits {
		for _, s := range sizes {
			pt, err := measureStreamPoint(ctx, kb, s, s, mo, rng)
			if err != nil {
				return nil, err
			}
			out = append(out, pt)
			if opt.Progress != nil {
				opt.Progress(len(out), len(ProfileBits)*len(sizes))
			}
		}
	}
	return out, nil
}

// MeasureReference measures the reference GEMM throughput (see
// Profile.Reference) for every kernel bit width at each cube size.
func MeasureReference(ctx context.Context, sizes []int, opt MeasureOptions) ([]GEMMPoint, error) {
	mo, err := opt.norm()
	if err != nil {
		return nil, err
	}
	unlock := lockThread(mo.Clock)
	defer unlock()
	rng := rand.New(rand.NewPCG(opt.Seed, 0x726566))
	var out []GEMMPoint
	for _, kb := range ProfileBits {
		for _, s := range sizes {
			pt, err := measureGEMMPoint(ctx, kb, s, s, s, mo, rng)
			if err != nil {
				return nil, err
			}
			out = append(out, pt)
			if opt.Progress != nil {
				opt.Progress(len(out), len(ProfileBits)*len(sizes))
			}
		}
	}
	return out, nil
}

// fitNonNeg fits y ~ x.c with c >= 0 minimizing a symmetric relative
// error: the weighted squares sum ((x_i.c - y_i) * w_i)^2 with w_i = 1/y_i
// first, then, for irlsRounds rounds, w_i = 1/sqrt(y_i * p_i) with p_i the
// previous prediction. Plain relative error (w = 1/y) is biased low, as an
// underestimate costs at most 100% while an overestimate is unbounded; the
// geometric weights make it symmetric to first order, like log(p/y). Each
// weighted problem is solved on every subset of the columns (the problems
// here have at most twelve) keeping the best one whose coefficients are
// all non-negative: for so few columns this is exact non-negative least
// squares. Coefficients are rounded to 4 significant digits and the fit is
// reported on them.
func fitNonNeg(xs [][]float64, ys []float64) ([]float64, *Fit, error) {
	n := len(xs)
	if n == 0 {
		return nil, nil, fmt.Errorf("no measurements")
	}
	for i, y := range ys {
		if !(y > 0) || math.IsInf(y, 0) {
			return nil, nil, fmt.Errorf("measurement %d is %v; want a positive time", i, y)
		}
	}
	w := make([]float64, n)
	for i, y := range ys {
		w[i] = 1 / y
	}
	best := nnlsWeighted(xs, ys, w)
	if best == nil {
		return nil, nil, fmt.Errorf("no non-negative fit of %d measurements", n)
	}
	for r := 0; r < irlsRounds; r++ {
		for i, y := range ys {
			p := math.Max(dotSlice(best, xs[i]), y/10)
			w[i] = 1 / math.Sqrt(y*p)
		}
		if c := nnlsWeighted(xs, ys, w); c != nil {
			best = c
		}
	}
	for j := range best {
		best[j] = roundSig(best[j], 4)
	}
	errs := make([]float64, n)
	for i := 0; i < n; i++ {
		var pred float64
		for j := range best {
			pred += best[j] * xs[i][j]
		}
		errs[i] = math.Abs(pred/ys[i] - 1)
	}
	slices.Sort(errs)
	med := errs[n/2]
	if n%2 == 0 {
		med = (errs[n/2-1] + errs[n/2]) / 2
	}
	return best, &Fit{Points: n, MedianErr: roundSig(med, 3), MaxErr: roundSig(errs[n-1], 3)}, nil
}

// irlsRounds is the number of reweighting rounds of fitNonNeg.
const irlsRounds = 3

func dotSlice(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// nnlsWeighted returns the non-negative c minimizing sum ((x_i.c - y_i) *
// w_i)^2, or nil if no subset of columns gives one.
func nnlsWeighted(xs [][]float64, ys, w []float64) []float64 {
	n, p := len(xs), len(xs[0])
	var best []float64
	bestErr := math.Inf(1)
	for mask := 1; mask < 1<<p; mask++ {
		var cols []int
		for j := 0; j < p; j++ {
			if mask&(1<<j) != 0 {
				cols = append(cols, j)
			}
		}
		if len(cols) > n {
			continue
		}
		a := mat.NewDense(n, len(cols), nil)
		b := mat.NewVecDense(n, nil)
		scale := make([]float64, len(cols))
		for ci, j := range cols {
			for i := 0; i < n; i++ {
				scale[ci] = math.Max(scale[ci], xs[i][j]*w[i])
			}
			if scale[ci] == 0 {
				scale[ci] = 1
			}
		}
		for i := 0; i < n; i++ {
			for ci, j := range cols {
				a.Set(i, ci, xs[i][j]*w[i]/scale[ci])
			}
			b.SetVec(i, ys[i]*w[i])
		}
		var sol mat.VecDense
		if err := sol.SolveVec(a, b); err != nil {
			continue
		}
		c := make([]float64, p)
		ok := true
		for ci, j := range cols {
			c[j] = sol.AtVec(ci) / scale[ci]
			if c[j] < 0 || math.IsNaN(c[j]) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var sse float64
		for i := 0; i < n; i++ {
			d := (dotSlice(c, xs[i]) - ys[i]) * w[i]
			sse += d * d
		}
		if sse < bestErr {
			best, bestErr = c, sse
		}
	}
	return best
}

// dwShapes are the depthwise geometries of the sweep: MobileNet's and
// EfficientNet's channel counts and planes, 3x3 and 5x5, strides 1 and 2.
func (sw sweep) dwShapes() []kernels.ConvShape {
	var out []kernels.ConvShape
	for _, c := range sw.dwC {
		for _, h := range sw.dwH {
			for _, k := range []int{3, 5} {
				for _, s := range []int{1, 2} {
					g := kernels.ConvShape{C: c, H: h, W: h, KH: k, KW: k, StrideH: s, StrideW: s,
						PadTop: k / 2, PadLeft: k / 2, PadBottom: k / 2, PadRight: k / 2}
					if oh, ow, err := g.Out(); err == nil && oh*ow*c*k*k <= sw.maxIm2Col {
						out = append(out, g)
					}
				}
			}
		}
	}
	return out
}

// measureNHWC fits Im2ColNHWCModel (kernels.Im2ColNHWC over the sweep's
// convolution geometries, channels-last) and DepthwiseModel
// (kernels.DepthwiseNHWC), several images per call like a batch.
func (p *Profile) measureNHWC(ctx context.Context, sw sweep, est *Profile, mo MeasureOptions, rng *rand.Rand, step func()) error {
	var pts []point
	for _, g := range sw.convShapes() {
		oh, ow, _ := g.Out()
		out := oh * ow * g.C * g.KH * g.KW
		imgs := max(1, min(16, (256<<10)/out))
		f := im2colNHWCFeatures(g, g.C)
		for j := range f {
			f[j] *= float64(imgs)
		}
		pts = append(pts, point{f: f, est: dotS(est.Im2ColNHWC.coef(), f), make: func() (func() error, error) {
			in := g.C * g.H * g.W
			src := randBytes(rng, imgs*in)
			dst := make([]uint8, imgs*out)
			return func() error {
				for i := 0; i < imgs; i++ {
					if err := kernels.Im2ColNHWC(dst[i*out:(i+1)*out], src[i*in:(i+1)*in], g, g.C, 0, 3); err != nil {
						return err
					}
				}
				return nil
			}, nil
		}})
	}
	c, fit, err := measureFit(ctx, pts, mo, step)
	if err != nil {
		return fmt.Errorf("costmodel: fitting the channels-last im2col model: %w", err)
	}
	p.Im2ColNHWC = Im2ColNHWCModel{CallNs: c[0], NsPerPixel: c[1], NsPerSegment: c[2], NsPerCopy: c[3], NsPerCopiedByte: c[4], NsPerByte: c[5], Fit: fit}

	pts = pts[:0]
	for _, g := range sw.dwShapes() {
		oh, ow, _ := g.Out()
		out := oh * ow * g.C
		in := g.C * g.H * g.W
		imgs := max(1, min(16, (256<<10)/(in+out)))
		f := depthwiseFeatures(g)
		for j := range f {
			f[j] *= float64(imgs)
		}
		pts = append(pts, point{f: f, est: dotS(est.Depthwise.coef(), f), make: func() (func() error, error) {
			w := make([]int8, g.C*g.KH*g.KW)
			for i := range w {
				w[i] = int8(rng.IntN(255) - 127)
			}
			d, err := kernels.PackDepthwise(w, g.C, g.KH, g.KW)
			if err != nil {
				return nil, err
			}
			rq := &kernels.Requant{Bias: make([]int32, g.C), Mult: make([]int32, g.C), Shift: make([]int, g.C), Zero: 3, Lo: 3, Hi: 255}
			for i := range rq.Mult {
				rq.Mult[i], rq.Shift[i] = 1<<30+int32(rng.IntN(1<<29)), 40
			}
			if err := rq.Freeze(g.C); err != nil { // as the engine's layers are
				return nil, err
			}
			src := randBytes(rng, imgs*in)
			dst := make([]uint8, imgs*out)
			sc := &kernels.DWScratch{}
			return func() error {
				for i := 0; i < imgs; i++ {
					if err := kernels.DepthwiseNHWC(dst[i*out:(i+1)*out], src[i*in:(i+1)*in], g, 3, d, rq, sc); err != nil {
						return err
					}
				}
				return nil
			}, nil
		}})
	}
	if c, fit, err = measureFit(ctx, pts, mo, step); err != nil {
		return fmt.Errorf("costmodel: fitting the depthwise model: %w", err)
	}
	p.Depthwise = DepthwiseModel{CallNs: c[0], NsPerRow: c[1], NsPerTap: c[2], NsPerLane: c[3], NsPerOutput: c[4], Fit: fit}
	return nil
}

// measureLayoutKernels fits the models of the kernels that move
// activations (Im2Col, Im2ColNHWC, DepthwiseNHWC, Transpose) over sw.
func (p *Profile) measureLayoutKernels(ctx context.Context, sw sweep, est *Profile, mo MeasureOptions, rng *rand.Rand, step func()) error {
	if err := p.measureIm2Col(ctx, sw, est, mo, rng, step); err != nil {
		return err
	}
	if err := p.measureNHWC(ctx, sw, est, mo, rng, step); err != nil {
		return err
	}
	return p.measureTranspose(ctx, sw, est, mo, rng, step)
}

// measureIm2Col fits Im2ColModel (kernels.Im2Col over the sweep's
// convolution geometries, several images per call like a batch).
func (p *Profile) measureIm2Col(ctx context.Context, sw sweep, est *Profile, mo MeasureOptions, rng *rand.Rand, step func()) error {
	var pts []point
	for _, g := range sw.convShapes() {
		oh, ow, _ := g.Out()
		// Like a layer, write the patch matrices of several images
		// one after another, so that the destination has the cache
		// footprint of a batch rather than of one image.
		out := oh * ow * g.C * g.KH * g.KW
		imgs := max(1, min(16, (256<<10)/out))
		f := im2colFeatures(g)
		for j := range f {
			f[j] *= float64(imgs)
		}
		pts = append(pts, point{f: f[:], est: dot5(est.Im2Col.coef(), f), make: func() (func() error, error) {
			src := randBytes(rng, imgs*g.C*g.H*g.W)
			dst := make([]uint8, imgs*out)
			in := g.C * g.H * g.W
			return func() error {
				for i := 0; i < imgs; i++ {
					if err := kernels.Im2Col(dst[i*out:(i+1)*out], src[i*in:(i+1)*in], g, 3); err != nil {
						return err
					}
				}
				return nil
			}, nil
		}})
	}
	c, fit, err := measureFit(ctx, pts, mo, step)
	if err != nil {
		return fmt.Errorf("costmodel: fitting the im2col model: %w", err)
	}
	p.Im2Col = Im2ColModel{CallNs: c[0], NsPerPixel: c[1], NsPerLine: c[2], NsPerRun: c[3], NsPerElement: c[4], Fit: fit}
	return nil
}

// measureTranspose fits TransposeModel (kernels.Transpose of one image's
// output, several images per call).
func (p *Profile) measureTranspose(ctx context.Context, sw sweep, est *Profile, mo MeasureOptions, rng *rand.Rand, step func()) error {
	var pts []point
	for _, m := range sw.trM {
		for _, n := range sw.trN {
			imgs := max(1, min(16, (256<<10)/(m*n)))
			f := transposeFeatures(m, n, p.CPU.L1D)
			for j := range f {
				f[j] *= float64(imgs)
			}
			pts = append(pts, point{f: f[:], est: dot5(est.Transpose.coef(), f), make: func() (func() error, error) {
				src := randBytes(rng, imgs*m*n)
				dst := make([]uint8, imgs*m*n)
				return func() error {
					for i := 0; i < imgs; i++ {
						kernels.Transpose(dst[i*m*n:(i+1)*m*n], src[i*m*n:(i+1)*m*n], m, n)
					}
					return nil
				}, nil
			}})
		}
	}
	c, fit, err := measureFit(ctx, pts, mo, step)
	if err != nil {
		return fmt.Errorf("costmodel: fitting the transpose model: %w", err)
	}
	p.Transpose = TransposeModel{CallNs: c[0], NsPerRow: c[1], NsPerElement: c[2], NsPerConflict: c[3], NsPerConflict4K: c[4], Fit: fit}
	return nil
}

// RefitLayoutModels measures again, on this CPU, the models of the kernels
// that move activations (im2col, im2col_nhwc, depthwise, transpose) of a
// measured profile p over the full sweep, and replaces them; the GEMM,
// stream and operation models, the CPU and the clock are kept. It is for a
// refitOptions checks that p describes this CPU's kernels and returns the
// sweep and the measurement options a Refit function times with: p's
// clock and thread count, BuildProfile's repeats.
func refitOptions(p *Profile) (sweep, MeasureOptions, error) {
	if err := p.CheckISA(DetectCPU().KernelISA); err != nil {
		return sweep{}, MeasureOptions{}, err
	}
	clock, err := ParseClock(p.Clock)
	if err != nil {
		return sweep{}, MeasureOptions{}, err
	}
	sw := newSweep(false)
	mo, err := MeasureOptions{Threads: p.Threads, Repeats: sw.repeats, Warmup: 1, MinSample: sw.minSample, Clock: clock}.norm()
	return sw, mo, err
}

// refit is the frame of the Refit functions: it checks p against this
// CPU and gets the measurement options (refitOptions), locks the thread
// for p's clock, lets measure re-measure what it replaces on a copy of p,
// and replaces p with the copy once the copy validates.
func refit(p *Profile, measure func(q *Profile, sw sweep, mo MeasureOptions) error) error {
	sw, mo, err := refitOptions(p)
	if err != nil {
		return err
	}
	unlock := lockThread(mo.Clock)
	defer unlock()
	q := *p
	if err := measure(&q, sw, mo); err != nil {
		return err
	}
	if err := q.Validate(); err != nil {
		return fmt.Errorf("costmodel: the re-measured profile is invalid (%w); measure again", err)
	}
	*p = q
	return nil
}

// profile whose layout fits are poor (Fit.MedianErr well above the GEMM
// fits'): the sweeps are timed as BuildProfile times them (measureFit), on
// p's clock and thread count. p must describe this CPU's kernels.
func RefitLayoutModels(ctx context.Context, p *Profile, opt ProfileOptions) error {
	return refit(p, func(q *Profile, sw sweep, mo MeasureOptions) error {
		est, err := AnalyticAVX2(AnalyticParams{Name: "estimate", CPU: "estimate", GHz: 3, MemoryGBps: 20})
		if err != nil {
			return err
		}
		rng := rand.New(rand.NewPCG(opt.Seed, 0x72656669740a))
		total := 2*len(sw.convShapes()) + len(sw.dwShapes()) + len(sw.trM)*len(sw.trN)
		done := 0
		return q.measureLayoutKernels(ctx, sw, est, mo, rng, func() {
			done++
			if opt.Progress != nil {
				opt.Progress(done, total)
			}
		})
	})
}
