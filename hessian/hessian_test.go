package hessian

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func mustOracle(t *testing.T, a mat.Symmetric, blocks []Block) *MatrixOracle {
	t.Helper()
	o, err := NewMatrixOracle(a, blocks)
	if err != nil {
		t.Fatalf("NewMatrixOracle: %v", err)
	}
	return o
}

func TestValidateBlocks(t *testing.T) {
	tests := []struct {
		name   string
		dim    int
		blocks []Block
		ok     bool
	}{
		{"one block", 10, []Block{{"a", 0, 10}}, true},
		{"gaps allowed", 10, []Block{{"a", 1, 3}, {"b", 6, 2}}, true},
		{"adjacent", 10, []Block{{"a", 0, 5}, {"b", 5, 5}}, true},
		{"none", 10, nil, false},
		{"empty block", 10, []Block{{"a", 0, 0}}, false},
		{"negative offset", 10, []Block{{"a", -1, 3}}, false},
		{"overlap", 10, []Block{{"a", 0, 5}, {"b", 4, 2}}, false},
		{"unsorted", 10, []Block{{"a", 5, 2}, {"b", 0, 2}}, false},
		{"past end", 10, []Block{{"a", 8, 3}}, false},
	}
	for _, tt := range tests {
		err := ValidateBlocks(tt.dim, tt.blocks)
		if got := err == nil; got != tt.ok {
			t.Errorf("%s: ValidateBlocks error = %v; want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBlocks) {
			t.Errorf("%s: error %v does not wrap ErrBlocks", tt.name, err)
		}
	}
}

func TestMatrixOracleHVP(t *testing.T) {
	const tol = 1e-12 // a 30-term dot product of O(1) values in float64
	rng := rand.New(rand.NewPCG(1, 2))
	n, k := 30, 3
	a := withSpectrum(rng, powerLaw(n, 1, 1))
	o := mustOracle(t, a, []Block{{"all", 0, n}})
	v := make([]float64, k*n)
	gaussian(rng, v)
	hv := make([]float64, k*n)
	if err := o.HVP(context.Background(), v, hv, k); err != nil {
		t.Fatal(err)
	}
	for j := range k {
		for i := range n {
			var want float64
			for l := range n {
				want += a.At(i, l) * v[j*n+l]
			}
			if got := hv[j*n+i]; math.Abs(got-want) > tol {
				t.Fatalf("direction %d row %d: got %v; want %v", j, i, got, want)
			}
		}
	}
	if err := o.HVP(context.Background(), v[:n], hv, k); err == nil {
		t.Errorf("HVP with a short v: got nil error; want a length error")
	}
}

// testBlocks leaves parameters 30..39 outside every block.
var testBlocks = []Block{{"conv1", 0, 30}, {"conv2", 40, 50}, {"fc", 90, 30}}

func calibrationMatrix() *mat.SymDense {
	return decayingProblem(7, 120, testBlocks, []float64{1, 0.3, 2})
}

// zStats runs est for seeds 0..nseeds-1 and returns the fractions of
// (seed, block) pairs whose error is within 1 and within 3 standard errors.
func zStats(t *testing.T, a *mat.SymDense, nseeds int, est func(seed uint64) (*Result, error)) (within1, within3 float64) {
	t.Helper()
	var n1, n3, n int
	for seed := range uint64(nseeds) {
		res, err := est(seed)
		if err != nil {
			t.Fatal(err)
		}
		for b, bt := range res.Blocks {
			z := math.Abs(bt.Trace-blockTrace(a, testBlocks[b])) / bt.StdErr
			n++
			if z <= 1 {
				n1++
			}
			if z <= 3 {
				n3++
			}
		}
	}
	return float64(n1) / float64(n), float64(n3) / float64(n)
}

// Calibration bounds for 300 seeds x 3 blocks = 900 z-scores, each a mean
// of >= 30 samples over its estimated standard error (close to normal): the
// 1-sigma fraction is 0.683 with binomial sd 0.016, so [0.62, 0.75] is
// about 4 sd either side; the 3-sigma fraction is 0.9973 (2.4 misses
// expected) and 0.99 allows 9 misses (Poisson tail probability ~1e-3).
const (
	calSeeds   = 300
	cal1Lo     = 0.62
	cal1Hi     = 0.75
	cal3Lo     = 0.99
	calProbes  = 100
	calPPProbe = 30
)

func TestHutchinsonCalibrated(t *testing.T) {
	a := calibrationMatrix()
	o := mustOracle(t, a, testBlocks)
	w1, w3 := zStats(t, a, calSeeds, func(seed uint64) (*Result, error) {
		return Hutchinson(context.Background(), o, Options{Seed: seed, MinProbes: calProbes, MaxProbes: calProbes, ProbesPerPass: 10})
	})
	if w1 < cal1Lo || w1 > cal1Hi {
		t.Errorf("fraction within 1 stderr: got %.3f; want in [%v, %v]", w1, cal1Lo, cal1Hi)
	}
	if w3 < cal3Lo {
		t.Errorf("fraction within 3 stderr: got %.3f; want >= %v", w3, cal3Lo)
	}
}

func TestHutchPlusPlusCalibrated(t *testing.T) {
	a := calibrationMatrix()
	o := mustOracle(t, a, testBlocks)
	for _, d := range []Deflation{DeflateGlobal, DeflatePerBlock} {
		// A sketch of 6 leaves a sizeable residual, so the residual
		// Hutchinson part and its standard error matter.
		w1, w3 := zStats(t, a, calSeeds, func(seed uint64) (*Result, error) {
			return HutchPlusPlus(context.Background(), o, PPOptions{
				Options:    Options{Seed: seed, MinProbes: calPPProbe, MaxProbes: calPPProbe, ProbesPerPass: 10},
				SketchSize: 6, Deflation: d})
		})
		if w1 < cal1Lo || w1 > cal1Hi {
			t.Errorf("%v: fraction within 1 stderr: got %.3f; want in [%v, %v]", d, w1, cal1Lo, cal1Hi)
		}
		if w3 < cal3Lo {
			t.Errorf("%v: fraction within 3 stderr: got %.3f; want >= %v", d, w3, cal3Lo)
		}
	}
}

func TestHutchinsonStopsAtTol(t *testing.T) {
	a := calibrationMatrix()
	c := &countingOracle{Oracle: mustOracle(t, a, testBlocks)}
	const tol = 0.03
	var seen []Progress
	res, err := Hutchinson(context.Background(), c, Options{Tol: tol, Seed: 11, MaxProbes: 100000,
		Progress: func(p Progress) { seen = append(seen, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged {
		t.Fatalf("Converged = false after %d products; want true", res.Products)
	}
	last := seen[len(seen)-1]
	for _, p := range seen[:len(seen)-1] {
		if p.Probes >= DefaultMinProbes && p.WorstRelErr <= tol {
			t.Errorf("progress %+v already met Tol %v but estimation went on", p, tol)
		}
	}
	if last.WorstRelErr > tol {
		t.Errorf("final WorstRelErr %v; want <= %v", last.WorstRelErr, tol)
	}
	if res.Products != c.products || last.Products != c.products || last.Probes != c.products {
		t.Errorf("products: result %d, progress %d, probes %d; oracle counted %d", res.Products, last.Products, last.Probes, c.products)
	}
	if c.calls != (c.products+DefaultProbesPerPass-1)/DefaultProbesPerPass {
		t.Errorf("oracle calls %d for %d products; want passes of %d", c.calls, c.products, DefaultProbesPerPass)
	}
	for b, bt := range res.Blocks {
		exact := blockTrace(a, testBlocks[b])
		if bt.RelErr > tol {
			t.Errorf("%s: RelErr %v; want <= %v", bt.Name, bt.RelErr, tol)
		}
		if got := bt.StdErr / math.Abs(bt.Trace); math.Abs(got-bt.RelErr) > 1e-15 {
			t.Errorf("%s: RelErr %v; want StdErr/|Trace| = %v", bt.Name, bt.RelErr, got)
		}
		if math.Abs(bt.Trace-exact) > 3*bt.StdErr {
			t.Errorf("%s: trace %v ± %v; exact %v is beyond 3 stderr", bt.Name, bt.Trace, bt.StdErr, exact)
		}
		if bt.Probes != c.products {
			t.Errorf("%s: Probes %d; want %d", bt.Name, bt.Probes, c.products)
		}
	}
}

func TestFixedProbes(t *testing.T) {
	// MinProbes = MaxProbes = 13 with passes of 8: passes of 8 and 5.
	c := &countingOracle{Oracle: mustOracle(t, calibrationMatrix(), testBlocks)}
	res, err := Hutchinson(context.Background(), c, Options{MinProbes: 13, MaxProbes: 13})
	if err != nil {
		t.Fatal(err)
	}
	if c.products != 13 || c.calls != 2 || res.Blocks[0].Probes != 13 {
		t.Errorf("got %d products in %d calls, %d probes; want 13 in 2 calls, 13 probes", c.products, c.calls, res.Blocks[0].Probes)
	}
}

func TestHutchPlusPlusFewerProducts(t *testing.T) {
	blocks := []Block{{"conv1", 0, 36}, {"conv2", 36, 84}, {"conv3", 120, 60}, {"fc", 192, 48}}
	a := decayingProblem(3, 240, blocks, []float64{1, 0.2, 3, 0.5})
	ctx := context.Background()
	// Tol 0.05 keeps plain Hutchinson's run short; the products needed
	// scale as 1/Tol^2 for both estimators' residual parts.
	opts := Options{Tol: 0.05, Seed: 5, MaxProbes: 1 << 20}
	plain := &countingOracle{Oracle: mustOracle(t, a, blocks)}
	rp, err := Hutchinson(ctx, plain, opts)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, res *Result) {
		t.Helper()
		if !res.Converged {
			t.Errorf("%s: not converged after %d products", name, res.Products)
		}
		for b, bt := range res.Blocks {
			if exact := blockTrace(a, blocks[b]); math.Abs(bt.Trace-exact) > 3*bt.StdErr {
				t.Errorf("%s %s: trace %v ± %v; exact %v is beyond 3 stderr", name, bt.Name, bt.Trace, bt.StdErr, exact)
			}
		}
	}
	check("plain", rp)
	for _, d := range []Deflation{DeflateGlobal, DeflatePerBlock} {
		pp := &countingOracle{Oracle: mustOracle(t, a, blocks)}
		res, err := HutchPlusPlus(ctx, pp, PPOptions{Options: opts, Deflation: d})
		if err != nil {
			t.Fatal(err)
		}
		check(d.String(), res)
		if res.Products != pp.products {
			t.Errorf("%v: Result.Products %d; oracle counted %d", d, res.Products, pp.products)
		}
		// The documented cost model of the low-rank part.
		wantSketch := balancePilot + 2*DefaultSketchSize
		if d == DeflatePerBlock {
			wantSketch = DefaultSketchSize
			for _, blk := range blocks {
				wantSketch += min(DefaultSketchSize, blk.Len)
			}
		}
		if res.SketchProducts != wantSketch {
			t.Errorf("%v: SketchProducts %d; want %d", d, res.SketchProducts, wantSketch)
		}
		// The goal: at most half the products of plain Hutchinson.
		if 2*pp.products > plain.products {
			t.Errorf("%v: Hutch++ used %d products; want at most half of plain Hutchinson's %d", d, pp.products, plain.products)
		}
		t.Logf("products to Tol %v: plain %d, Hutch++ %v %d (sketch %d)", opts.Tol, plain.products, d, pp.products, res.SketchProducts)
	}
}

func TestHutchPlusPlusExactOnLowRank(t *testing.T) {
	// Rank 6 with mixed signs: a sketch of 16 captures the whole range, so
	// the low-rank part is the exact trace and the residual vanishes.
	const tol = 1e-9 // rounding in orthonormalization and products, relative to max |lambda| * n
	l := make([]float64, 100)
	copy(l, []float64{5, 4, -3, 2, 1, 0.5})
	blocks := []Block{{"a", 0, 30}, {"b", 35, 40}, {"c", 80, 20}}
	a := withSpectrum(rand.New(rand.NewPCG(9, 9)), l)
	a = scaleBlocks(a, blocks, []float64{1, 0.1, 3})
	o := mustOracle(t, a, blocks)
	for _, d := range []Deflation{DeflateGlobal, DeflatePerBlock} {
		res, err := HutchPlusPlus(context.Background(), o, PPOptions{Options: Options{Seed: 1}, SketchSize: 16, Deflation: d})
		if err != nil {
			t.Fatal(err)
		}
		for b, bt := range res.Blocks {
			exact := blockTrace(a, blocks[b])
			if math.Abs(bt.Trace-exact) > tol || math.Abs(bt.LowRank-exact) > tol {
				t.Errorf("%v %s: trace %v (low-rank part %v); want exact %v", d, bt.Name, bt.Trace, bt.LowRank, exact)
			}
		}
	}
	// Per-block deflation is exact on blocks no longer than the sketch,
	// whatever the rank.
	full := withSpectrum(rand.New(rand.NewPCG(2, 2)), powerLaw(60, 1, 0.5))
	small := []Block{{"a", 0, 10}, {"b", 20, 25}}
	res, err := HutchPlusPlus(context.Background(), mustOracle(t, full, small), PPOptions{SketchSize: 32, Deflation: DeflatePerBlock})
	if err != nil {
		t.Fatal(err)
	}
	for b, bt := range res.Blocks {
		if exact := blockTrace(full, small[b]); math.Abs(bt.Trace-exact) > tol {
			t.Errorf("per-block %s: trace %v; want exact %v", bt.Name, bt.Trace, exact)
		}
	}
}

func TestZeroTraceFloor(t *testing.T) {
	// Block "zero" has H_zz = 0 but couples to "big": its samples are pure
	// cross terms, mean 0, so its relative error is undefined without the
	// floor. Block "dead" has zero rows: its samples are exactly 0.
	n := 40
	a := mat.NewSymDense(n, nil)
	big := withSpectrum(rand.New(rand.NewPCG(4, 4)), powerLaw(20, 1, 1))
	rng := rand.New(rand.NewPCG(4, 5))
	for i := range 20 {
		for j := i; j < 20; j++ {
			a.SetSym(i, j, big.At(i, j))
		}
		for j := 20; j < 30; j++ {
			a.SetSym(i, j, 0.003*rng.NormFloat64())
		}
	}
	blocks := []Block{{"big", 0, 20}, {"zero", 20, 10}, {"dead", 30, 10}}
	o := mustOracle(t, a, blocks)
	// A floor of 0.1 makes the zero block's target stderr 0.02*0.1*10*mean
	// curvature ~ 2e-3, about 500 probes for cross terms of sd ~0.04.
	res, err := Hutchinson(context.Background(), o, Options{Seed: 1, MaxProbes: 5000, FloorFraction: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Converged {
		t.Errorf("with the floor: not converged after %d products; want converged", res.Products)
	}
	var sumAbs float64
	for _, bt := range res.Blocks {
		sumAbs += math.Abs(bt.Trace)
	}
	floor := 0.1 * 10 * sumAbs / 40
	if z := res.Blocks[1]; math.Abs(z.RelErr-z.StdErr/floor) > 1e-12*z.RelErr {
		t.Errorf("zero block: RelErr %v; want StdErr/floor = %v/%v", z.RelErr, z.StdErr, floor)
	}
	if z := res.Blocks[1]; math.Abs(z.Trace) > 3*z.StdErr {
		t.Errorf("zero block: trace %v ± %v; want 0 within 3 stderr", z.Trace, z.StdErr)
	}
	if d := res.Blocks[2]; d.Trace != 0 || d.StdErr != 0 || d.RelErr != 0 {
		t.Errorf("dead block: got trace %v, stderr %v, relerr %v; want all 0", d.Trace, d.StdErr, d.RelErr)
	}
	res, err = Hutchinson(context.Background(), o, Options{Seed: 1, MaxProbes: 5000, FloorFraction: -1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Converged {
		t.Errorf("without the floor: converged with zero-block relative error %v; want no convergence", res.Blocks[1].RelErr)
	}
}

// eigenProblem has diagonal blocks with known spectra (ratio 1/2 between
// the two dominant eigenvalues), random coupling between blocks and
// parameters outside every block.
func eigenProblem() (*mat.SymDense, []Block, []float64) {
	blocks := []Block{{"a", 0, 40}, {"b", 40, 60}, {"c", 110, 40}}
	top := []float64{10, -8, 0.02}
	n := 150
	rng := rand.New(rand.NewPCG(8, 8))
	a := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			a.SetSym(i, j, 0.3*rng.NormFloat64())
		}
	}
	for b, blk := range blocks {
		l := powerLaw(blk.Len, top[b]/2, 1)
		l[0] = top[b]
		l[3] = -l[3]
		d := withSpectrum(rng, l)
		for i := range blk.Len {
			for j := i; j < blk.Len; j++ {
				a.SetSym(blk.Offset+i, blk.Offset+j, d.At(i, j))
			}
		}
	}
	return a, blocks, top
}

func TestTopEigenvalues(t *testing.T) {
	// Power iteration's Rayleigh quotient error shrinks by (1/2)^2 per
	// iteration here, so stopping at a relative change of 1e-4 leaves an
	// error below 1e-4/3; Lanczos' residual bound is tighter.
	const relTol = 1e-4
	a, blocks, top := eigenProblem()
	o := mustOracle(t, a, blocks)
	for _, m := range []EigenMethod{Power, Lanczos} {
		c := &countingOracle{Oracle: o}
		res, err := TopEigenvalues(context.Background(), c, EigenOptions{Method: m, Seed: 3, MaxIter: 200})
		if err != nil {
			t.Fatal(err)
		}
		iters := 0
		for b, be := range res.Blocks {
			// Independent reference: gonum's symmetric eigensolver on the block.
			blk := blocks[b]
			sub := mat.NewSymDense(blk.Len, nil)
			for i := range blk.Len {
				for j := i; j < blk.Len; j++ {
					sub.SetSym(i, j, a.At(blk.Offset+i, blk.Offset+j))
				}
			}
			var es mat.EigenSym
			if !es.Factorize(sub, false) {
				t.Fatal("EigenSym failed")
			}
			want := 0.0
			for _, v := range es.Values(nil) {
				if math.Abs(v) > math.Abs(want) {
					want = v
				}
			}
			if math.Abs(want-top[b]) > 1e-10*math.Abs(top[b]) {
				t.Fatalf("test setup: EigenSym top %v; constructed %v", want, top[b])
			}
			if !be.Converged || math.Abs(be.Value-want) > relTol*math.Abs(want) {
				t.Errorf("method %d block %s: got %v (converged %v, %d iterations); want %v within %v relative",
					m, be.Name, be.Value, be.Converged, be.Iterations, want, relTol)
			}
			iters = max(iters, be.Iterations)
		}
		if c.calls != iters || res.Products != c.products {
			t.Errorf("method %d: %d oracle calls, %d products (reported %d); want one batched call per iteration (%d)", m, c.calls, c.products, res.Products, iters)
		}
		t.Logf("method %d: %d products, %d calls", m, c.products, c.calls)
	}
}

func TestDeterminism(t *testing.T) {
	a := calibrationMatrix()
	o := mustOracle(t, a, testBlocks)
	ctx := context.Background()
	runs := map[string]func(seed uint64) (any, error){
		"hutchinson": func(s uint64) (any, error) { return Hutchinson(ctx, o, Options{Seed: s}) },
		"hutch++ global": func(s uint64) (any, error) {
			return HutchPlusPlus(ctx, o, PPOptions{Options: Options{Seed: s}, SketchSize: 8})
		},
		"hutch++ per-block": func(s uint64) (any, error) {
			return HutchPlusPlus(ctx, o, PPOptions{Options: Options{Seed: s}, SketchSize: 8, Deflation: DeflatePerBlock})
		},
		"power":   func(s uint64) (any, error) { return TopEigenvalues(ctx, o, EigenOptions{Seed: s, Tol: 1e-3}) },
		"lanczos": func(s uint64) (any, error) { return TopEigenvalues(ctx, o, EigenOptions{Seed: s, Method: Lanczos}) },
	}
	for _, name := range []string{"hutchinson", "hutch++ global", "hutch++ per-block", "power", "lanczos"} {
		run := runs[name]
		r1, err1 := run(42)
		r2, err2 := run(42)
		r3, err3 := run(43)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r1, r2) {
			t.Errorf("%s: same seed gave different results:\n%+v\n%+v", name, r1, r2)
		}
		if reflect.DeepEqual(r1, r3) {
			t.Errorf("%s: seeds 42 and 43 gave identical results; the seed is ignored", name)
		}
	}
}

var errOracle = errors.New("oracle broke")

type failingOracle struct {
	Oracle
	after int // calls that succeed
	nan   bool
}

func (f *failingOracle) HVP(ctx context.Context, v, hv []float64, k int) error {
	if f.after == 0 {
		if f.nan {
			if err := f.Oracle.HVP(ctx, v, hv, k); err != nil {
				return err
			}
			hv[len(hv)/2] = math.NaN()
			return nil
		}
		return errOracle
	}
	f.after--
	return f.Oracle.HVP(ctx, v, hv, k)
}

func TestErrors(t *testing.T) {
	a := calibrationMatrix()
	o := mustOracle(t, a, testBlocks)

	// Cancellation during estimation.
	ctx, cancel := context.WithCancel(context.Background())
	res, err := Hutchinson(ctx, o, Options{Seed: 1, Tol: 1e-9, MaxProbes: 1000, Progress: func(p Progress) {
		if p.Probes >= 16 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Errorf("Hutchinson cancelled: got (%v, %v); want (nil, error wrapping context.Canceled)", res, err)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := HutchPlusPlus(done, o, PPOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("HutchPlusPlus cancelled: got %v; want context.Canceled", err)
	}
	for _, m := range []EigenMethod{Power, Lanczos} {
		if _, err := TopEigenvalues(done, o, EigenOptions{Method: m}); !errors.Is(err, context.Canceled) {
			t.Errorf("TopEigenvalues(%d) cancelled: got %v; want context.Canceled", m, err)
		}
	}

	// Oracle failures.
	for after := range 4 {
		f := &failingOracle{Oracle: o, after: after}
		if _, err := HutchPlusPlus(context.Background(), f, PPOptions{}); !errors.Is(err, errOracle) {
			t.Errorf("oracle failing after %d calls: got %v; want errOracle wrapped", after, err)
		}
	}
	if _, err := Hutchinson(context.Background(), &failingOracle{Oracle: o, after: 2, nan: true}, Options{}); err == nil {
		t.Errorf("NaN product: got nil error; want a non-finite error")
	}

	// Invalid options.
	bad := []struct {
		name string
		run  func() error
	}{
		{"MinProbes 1", func() error { _, err := Hutchinson(context.Background(), o, Options{MinProbes: 1}); return err }},
		{"Max < Min", func() error {
			_, err := Hutchinson(context.Background(), o, Options{MinProbes: 20, MaxProbes: 10})
			return err
		}},
		{"ProbesPerPass -1", func() error { _, err := Hutchinson(context.Background(), o, Options{ProbesPerPass: -1}); return err }},
		{"Tol NaN", func() error { _, err := Hutchinson(context.Background(), o, Options{Tol: math.NaN()}); return err }},
		{"Tol -1", func() error { _, err := Hutchinson(context.Background(), o, Options{Tol: -1}); return err }},
		{"SketchSize -1", func() error {
			_, err := HutchPlusPlus(context.Background(), o, PPOptions{SketchSize: -1})
			return err
		}},
		{"Deflation 7", func() error { _, err := HutchPlusPlus(context.Background(), o, PPOptions{Deflation: 7}); return err }},
		{"eigen MaxIter -1", func() error {
			_, err := TopEigenvalues(context.Background(), o, EigenOptions{MaxIter: -1})
			return err
		}},
		{"eigen Method 5", func() error { _, err := TopEigenvalues(context.Background(), o, EigenOptions{Method: 5}); return err }},
	}
	for _, tt := range bad {
		if err := tt.run(); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: got %v; want ErrOptions", tt.name, err)
		}
	}
	if _, err := Hutchinson(context.Background(), nil, Options{}); err == nil {
		t.Errorf("nil oracle: got nil error")
	}
}
