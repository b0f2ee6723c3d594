package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// expPaths are the kernels Exp can take; forcing one switches the other
// flags off (a path the CPU lacks is skipped).
var expPaths = []struct {
	name         string
	avx512, avx2 bool
}{
	{"avx512", true, false},
	{"avx2", false, true},
	{"go", false, false},
}

// withExpPath sets the Exp flags for path p and reports whether the CPU
// has it; the returned func restores them.
func withExpPath(p int) (ok bool, restore func()) {
	a, b := useExpAVX512, useExpAVX2FMA
	restore = func() { useExpAVX512, useExpAVX2FMA = a, b }
	useExpAVX512, useExpAVX2FMA = expPaths[p].avx512, expPaths[p].avx2
	ok = (!expPaths[p].avx512 || a) && (!expPaths[p].avx2 || b)
	return ok, restore
}

// expKernels are the functions tested against their scalar definitions:
// Exp against math.Exp, Sigmoid and each output of SigmoidPair against
// the logistic function from exp(-|x|) (network's sigmoidPair).
var expKernels = []struct {
	name string
	vec  func(dst, src []float64)
	ref  func(float64) float64
	asm  func(dst, src []float64) int
}{
	{"Exp", Exp, math.Exp, expAsm},
	{"Sigmoid", Sigmoid, func(x float64) float64 {
		e := math.Exp(-math.Abs(x))
		if x >= 0 {
			return 1 / (1 + e)
		}
		return e / (1 + e)
	}, sigmoidAsm},
	{"SigmoidPair.s", func(dst, src []float64) { SigmoidPair(dst, make([]float64, len(dst)), src) },
		func(x float64) float64 { s, _ := sigmoidPairDef(x); return s },
		func(dst, src []float64) int { return sigmoidPairAsm(dst, make([]float64, len(dst)), src) }},
	{"SigmoidPair.c", func(dst, src []float64) { SigmoidPair(make([]float64, len(dst)), dst, src) },
		func(x float64) float64 { _, c := sigmoidPairDef(x); return c },
		func(dst, src []float64) int { return sigmoidPairAsm(make([]float64, len(dst)), dst, src) }},
}

// sigmoidPairDef is network's sigmoidPair: sigmoid(x) and sigmoid(-x)
// from e = exp(-|x|).
func sigmoidPairDef(x float64) (s, c float64) {
	e := math.Exp(-math.Abs(x))
	p, q := 1/(1+e), e/(1+e)
	if x >= 0 {
		return p, q
	}
	return q, p
}

// checkExp runs kernel k on src (into a fresh dst and in place) and
// compares every value's bits with its definition.
func checkExp(t *testing.T, k int, path string, src []float64) {
	t.Helper()
	f := expKernels[k]
	dst := make([]float64, len(src))
	f.vec(dst, src)
	in := append([]float64(nil), src...)
	f.vec(in, in)
	for i, x := range src {
		w := f.ref(x)
		want := math.Float64bits(w)
		if got := math.Float64bits(dst[i]); got != want {
			t.Fatalf("%s: %s(%v) [%d of %d] = %v (%#x); want %v (%#x)",
				path, f.name, x, i, len(src), dst[i], got, w, want)
		}
		if got := math.Float64bits(in[i]); got != want {
			t.Fatalf("%s, in place: %s(%v) [%d of %d] = %#x; want %#x", path, f.name, x, i, len(src), got, want)
		}
	}
}

// expEdges are inputs around every branch of math.Exp's assembly: zeros,
// infinities, NaN, the overflow threshold, the last normal and the last
// non-zero results, subnormal inputs, and the points where
// round(x*log2(e)) changes.
func expEdges() []float64 {
	const overflow = 7.09782712893384e+02 // math's exp_amd64.s Overflow
	var xs []float64
	add := func(x float64, steps int) {
		xs = append(xs, x, -x)
		up, down := x, x
		for range steps {
			up, down = math.Nextafter(up, math.Inf(1)), math.Nextafter(down, math.Inf(-1))
			xs = append(xs, up, down, -up, -down)
		}
	}
	add(0, 3)
	add(math.SmallestNonzeroFloat64, 3)
	add(0x1p-1022, 3) // smallest normal
	add(1e-300, 0)
	add(overflow, 4)
	add(709.78271289338397, 4) // log(MaxFloat64)
	add(708.39641853226408, 4) // -x: log of the smallest normal
	add(745.13321910194110, 4) // -x: log of the smallest subnormal
	add(744.44007192138122, 4)
	add(1e10, 0)
	add(math.MaxFloat64, 1)
	for k := -1080.0; k <= 1030; k++ {
		// half-way points of the rounding of x*log2(e), and k*ln2
		add((k+0.5)*math.Ln2, 2)
		add(k*math.Ln2, 1)
	}
	xs = append(xs, math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(0x7FF8000000000001),
		math.Float64frombits(0xFFF0000000000001))
	return xs
}

// TestExpBits checks Exp and Sigmoid against their definitions bit for
// bit, on every path: lengths 0-40 (vectors and tails), seeded random
// inputs over [-750, 720] and [-40, 40], the edges of math.Exp's
// branches alone and mixed into vectors of ordinary values.
func TestExpBits(t *testing.T) {
	if !mathUsesFMA {
		t.Log("math.Exp takes its non-FMA path here; only the Go loops run")
	}
	n := 1 << 21
	if testing.Short() {
		n = 1 << 16
	}
	edges := expEdges()
	for p, path := range expPaths {
		ok, restore := withExpPath(p)
		if !ok {
			restore()
			t.Logf("%s: not on this CPU", path.name)
			continue
		}
		for k, f := range expKernels {
			rng := rand.New(rand.NewPCG(91, uint64(p)))
			for length := 0; length <= 40; length++ {
				src := make([]float64, length)
				for i := range src {
					src[i] = rng.Float64()*80 - 40
				}
				checkExp(t, k, path.name, src)
			}
			for _, r := range [][2]float64{{-750, 720}, {-40, 40}} {
				src := make([]float64, n)
				for i := range src {
					src[i] = r[0] + rng.Float64()*(r[1]-r[0])
				}
				checkExp(t, k, path.name, src)
				// In [-40, 40] every lane takes the main path, so the
				// kernels must do every whole vector themselves.
				width := map[string]int{"avx512": 8, "avx2": 4, "go": n + 1}[path.name]
				if got, want := f.asm(make([]float64, n), src), n/width*width; r[0] == -40 && got != want {
					t.Fatalf("%s: the %s kernel did %d of %d values; want %d", path.name, f.name, got, n, want)
				}
			}
			checkExp(t, k, path.name, edges)
			// Each edge as one lane of an otherwise ordinary vector, at
			// every position of 8.
			for _, e := range edges {
				for pos := range 8 {
					src := []float64{0.5, -1, 2, -3, 4, -5, 6, -7, 8, 9, 10}
					src[pos] = e
					checkExp(t, k, path.name, src)
				}
			}
		}
		restore()
	}
}

// BenchmarkExp times Exp and Sigmoid per value on every path against
// loops of their scalar definitions (math.Exp; the logistic function
// from math.Exp) in the same run, over 256 values in [-20, 20].
func BenchmarkExp(b *testing.B) {
	rng := rand.New(rand.NewPCG(92, 93))
	src, dst := make([]float64, 256), make([]float64, 256)
	for i := range src {
		src[i] = 40*rng.Float64() - 20
	}
	perValue := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(src)), "ns/value")
	}
	for _, f := range expKernels {
		b.Run(f.name+"/scalar", func(b *testing.B) {
			for b.Loop() {
				for i, x := range src {
					dst[i] = f.ref(x)
				}
			}
			perValue(b)
		})
	}
	for p, path := range expPaths {
		for _, f := range expKernels {
			b.Run(f.name+"/"+path.name, func(b *testing.B) {
				ok, restore := withExpPath(p)
				defer restore()
				if !ok {
					b.Skip("not on this CPU")
				}
				for b.Loop() {
					f.vec(dst, src)
				}
				perValue(b)
			})
		}
	}
}
