package quant

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"mpsearch/internal/cputime"
	"mpsearch/network"
)

// Tolerances.
const (
	// scaleTol bounds the relative difference of scales computed from
	// weights whose compensation updates were summed in a different order
	// (block sizes, the naive reference's explicit inverses): a few hundred
	// ulps of float64 accumulated over at most a few hundred updates.
	scaleTol = 1e-9
	// refCond is the relative difference allowed between our GPTQ's
	// compensated weights and the naive reference's, through a
	// condition number of at most ~1e3 of the damped test Hessians.
	refCond = 1e-9
)

// correlated returns a [cols, n] matrix of inputs with strongly correlated
// features: x = A z + 0.1 e, with A [cols, k] (k < cols) and z, e standard
// normal, the low-rank structure typical of layer inputs.
func correlated(rng *rand.Rand, cols, n, k int) []float64 {
	a := make([]float64, cols*k)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	x := make([]float64, cols*n)
	z := make([]float64, k)
	for s := 0; s < n; s++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for c := 0; c < cols; c++ {
			v := 0.1 * rng.NormFloat64()
			for i, zi := range z {
				v += a[c*k+i] * zi
			}
			x[c*n+s] = v
		}
	}
	return x
}

// gram returns X Xᵀ of a [cols, n] matrix by plain loops.
func gram(x []float64, cols, n int) []float64 {
	h := make([]float64, cols*cols)
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			s := 0.0
			for k := 0; k < n; k++ {
				s += x[i*n+k] * x[j*n+k]
			}
			h[i*cols+j] = s
		}
	}
	return h
}

func randMatrix(rng *rand.Rand, rows, cols int) []float64 {
	w := make([]float64, rows*cols)
	for i := range w {
		w[i] = rng.NormFloat64() * (1 + float64(i%7)/7) // uneven magnitudes
	}
	return w
}

// outputError is ‖(W − Ŵ)X‖² by plain loops.
func outputError(w, wq []float64, rows, cols int, x []float64, n int) float64 {
	e := 0.0
	for r := 0; r < rows; r++ {
		for s := 0; s < n; s++ {
			d := 0.0
			for c := 0; c < cols; c++ {
				d += (w[r*cols+c] - wq[r*cols+c]) * x[c*n+s]
			}
			e += d * d
		}
	}
	return e
}

// refScale is the reference scale of values v: mean|v| at one bit,
// max|v|/qmax or the best of the shrink grid p = 1, 0.95, ..., 0.05 by
// squared rounding error (first on ties); 1 for all zeros.
func refScale(v []float64, bits int, mse bool) float64 {
	m, sum := 0.0, 0.0
	for _, x := range v {
		m, sum = math.Max(m, math.Abs(x)), sum+math.Abs(x)
	}
	if m == 0 {
		return 1
	}
	if bits == 1 {
		return sum / float64(len(v))
	}
	qmax := float64(int(1)<<(bits-1) - 1)
	best, bestErr := 0.0, math.Inf(1)
	for k := 0; k < 20; k++ {
		if k > 0 && !mse {
			break
		}
		s := (1 - 0.05*float64(k)) * m / qmax
		e := 0.0
		for _, x := range v {
			q := math.Max(-qmax, math.Min(qmax, math.RoundToEven(x/s)))
			e += (x - q*s) * (x - q*s)
		}
		if e < bestErr {
			best, bestErr = s, e
		}
	}
	return best
}

func refCode(x, s float64, bits int) float64 {
	if bits == 1 {
		if x < 0 {
			return -1
		}
		return 1
	}
	qmax := float64(int(1)<<(bits-1) - 1)
	return math.Max(-qmax, math.Min(qmax, math.RoundToEven(x/s)))
}

// invert returns the inverse of the n×n matrix a by Gauss-Jordan
// elimination with partial pivoting.
func invert(a []float64, n int) []float64 {
	m := append([]float64(nil), a...)
	inv := make([]float64, n*n)
	for i := 0; i < n; i++ {
		inv[i*n+i] = 1
	}
	for c := 0; c < n; c++ {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(m[r*n+c]) > math.Abs(m[p*n+c]) {
				p = r
			}
		}
		for k := 0; k < n; k++ {
			m[c*n+k], m[p*n+k] = m[p*n+k], m[c*n+k]
			inv[c*n+k], inv[p*n+k] = inv[p*n+k], inv[c*n+k]
		}
		d := m[c*n+c]
		for k := 0; k < n; k++ {
			m[c*n+k] /= d
			inv[c*n+k] /= d
		}
		for r := 0; r < n; r++ {
			if r == c || m[r*n+c] == 0 {
				continue
			}
			f := m[r*n+c]
			for k := 0; k < n; k++ {
				m[r*n+k] -= f * m[c*n+k]
				inv[r*n+k] -= f * inv[c*n+k]
			}
		}
	}
	return inv
}

// naiveGPTQ is the optimal brain quantizer written plainly: columns in
// order (act-order: by decreasing diagonal of H, ties by index), one at a
// time; at each step the inverse of the damped H restricted to the columns
// not yet quantized is recomputed from scratch, the column is rounded, and
// the OBS update δ = −(w_q − ŵ_q)/[H_F⁻¹]_qq · [H_F⁻¹]_{q,:} is applied to
// the remaining columns. Group scales are taken when a group's first
// column is reached (from the updated weights) or, with act-order or
// static groups, from the original weights. It returns the codes and the scales [rows, groups].
func naiveGPTQ(w []float64, rows, cols int, h []float64, bits, gs int, mse, actOrder, static bool) ([]int8, []float64) {
	if gs == 0 {
		gs = cols
	}
	ng := (cols + gs - 1) / gs
	hd := append([]float64(nil), h...)
	mean, live := 0.0, 0.0
	for i := 0; i < cols; i++ {
		if hd[i*cols+i] > 0 {
			mean += hd[i*cols+i]
			live++
		}
	}
	mean /= live
	for i := 0; i < cols; i++ {
		if hd[i*cols+i] == 0 {
			hd[i*cols+i] = mean
		}
	}
	for i := 0; i < cols; i++ {
		hd[i*cols+i] += 0.01 * mean
	}
	order := make([]int, cols)
	for i := range order {
		order[i] = i
	}
	if actOrder { // insertion sort: stable
		for i := 1; i < cols; i++ {
			for j := i; j > 0 && hd[order[j]*cols+order[j]] > hd[order[j-1]*cols+order[j-1]]; j-- {
				order[j], order[j-1] = order[j-1], order[j]
			}
		}
	}
	cur := append([]float64(nil), w...)
	scales := make([]float64, rows*ng)
	if actOrder || static {
		for r := 0; r < rows; r++ {
			for g := 0; g < ng; g++ {
				scales[r*ng+g] = refScale(w[r*cols+g*gs:r*cols+min((g+1)*gs, cols)], bits, mse)
			}
		}
	}
	codes := make([]int8, rows*cols)
	for step, q := range order {
		rest := order[step:] // q first
		n := len(rest)
		hf := make([]float64, n*n)
		for i, a := range rest {
			for j, b := range rest {
				hf[i*n+j] = hd[a*cols+b]
			}
		}
		hinv := invert(hf, n)
		for r := 0; r < rows; r++ {
			if !actOrder && !static && q%gs == 0 {
				scales[r*ng+q/gs] = refScale(cur[r*cols+q:r*cols+min(q+gs, cols)], bits, mse)
			}
			s := scales[r*ng+q/gs]
			c := refCode(cur[r*cols+q], s, bits)
			codes[r*cols+q] = int8(c)
			e := (cur[r*cols+q] - c*s) / hinv[0]
			for j, b := range rest {
				cur[r*cols+b] -= e * hinv[j]
			}
		}
	}
	return codes, scales
}

type gptqCase struct {
	bits, gs    int
	mse, act    bool
	static      bool
	rows, cols  int
	rank, block int
}

func (c gptqCase) String() string {
	return fmt.Sprintf("W%d/g%d/mse=%v/act=%v/static=%v/%dx%d/block%d", c.bits, c.gs, c.mse, c.act, c.static, c.rows, c.cols, c.block)
}

// TestGPTQMatchesNaiveOBQ: the lazy-batch Cholesky GPTQ gives the same
// integers (and scales) as the plain one-column-at-a-time optimal brain
// quantizer with explicit inverses, at every width, per channel and per
// group, with and without act-order and the clipping search.
func TestGPTQMatchesNaiveOBQ(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 1))
	var cases []gptqCase
	for _, bits := range []int{1, 2, 3, 4, 8} {
		cases = append(cases,
			gptqCase{bits: bits, rows: 12, cols: 40, rank: 10, block: 16},
			gptqCase{bits: bits, gs: 8, rows: 12, cols: 40, rank: 10, block: 16},
			gptqCase{bits: bits, gs: 16, act: true, rows: 9, cols: 37, rank: 30, block: 7},
			gptqCase{bits: bits, gs: 12, mse: true, rows: 9, cols: 37, rank: 8, block: 128},
			gptqCase{bits: bits, mse: true, act: true, rows: 9, cols: 37, rank: 8, block: 5},
			gptqCase{bits: bits, gs: 10, static: true, rows: 9, cols: 37, rank: 12, block: 4},
		)
	}
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			w := randMatrix(rng, c.rows, c.cols)
			x := correlated(rng, c.cols, 3*c.cols, c.rank)
			h := gram(x, c.cols, 3*c.cols)
			got, err := GPTQ(w, c.rows, c.cols, h, GPTQOptions{Bits: c.bits, GroupSize: c.gs, MSE: c.mse, ActOrder: c.act, StaticGroups: c.static, BlockSize: c.block})
			if err != nil {
				t.Fatal(err)
			}
			codes, scales := naiveGPTQ(w, c.rows, c.cols, h, c.bits, c.gs, c.mse, c.act, c.static)
			for i, q := range codes {
				if got.Q[i] != q {
					t.Fatalf("code (%d, %d): got %d; want %d", i/c.cols, i%c.cols, got.Q[i], q)
				}
			}
			for i, s := range scales {
				if math.Abs(got.Scales[i]-s) > refCond*s {
					t.Fatalf("scale %d: got %.17g; want %.17g", i, got.Scales[i], s)
				}
			}
		})
	}
}

// TestGPTQBeatsRoundToNearest: on correlated inputs GPTQ's output error
// ‖(W − Ŵ)X‖² is below round-to-nearest's at 2, 3, 4 and 8 bits, per
// channel and per group, with or without act-order.
func TestGPTQBeatsRoundToNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 1))
	const rows, cols, n = 32, 96, 400
	w := randMatrix(rng, rows, cols)
	x := correlated(rng, cols, n, 24)
	h := gram(x, cols, n)
	for _, bits := range []int{2, 3, 4, 8} {
		for _, gs := range []int{0, 32} {
			rtn, err := QuantizeMatrix(w, rows, cols, bits, gs, false)
			if err != nil {
				t.Fatal(err)
			}
			eRTN := outputError(w, rtn.Dequantize(), rows, cols, x, n)
			for _, act := range []bool{false, true} {
				g, err := GPTQ(w, rows, cols, h, GPTQOptions{Bits: bits, GroupSize: gs, ActOrder: act})
				if err != nil {
					t.Fatal(err)
				}
				e := outputError(w, g.Dequantize(), rows, cols, x, n)
				t.Logf("W%d group %d act-order %v: GPTQ %.4g, round-to-nearest %.4g (%.3f×)", bits, gs, act, e, eRTN, e/eRTN)
				if e >= eRTN {
					t.Errorf("W%d group %d act-order %v: GPTQ output error %g; want below round-to-nearest's %g", bits, gs, act, e, eRTN)
				}
			}
		}
	}
}

// TestGPTQBlockSizeExact: lazy batching changes only the order of
// floating-point sums: block sizes 1, 7, 32 and 128 give the same codes.
func TestGPTQBlockSizeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	const rows, cols, n = 16, 300, 600
	w := randMatrix(rng, rows, cols)
	x := correlated(rng, cols, n, 60)
	h := gram(x, cols, n)
	for _, bits := range []int{2, 4} {
		for _, gs := range []int{0, 32, 64, 128, 48} {
			for _, act := range []bool{false, true} {
				opt := GPTQOptions{Bits: bits, GroupSize: gs, ActOrder: act, MSE: gs == 64, BlockSize: 1}
				one, err := GPTQ(w, rows, cols, h, opt)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range []int{7, 32, 128} {
					opt.BlockSize = b
					got, err := GPTQ(w, rows, cols, h, opt)
					if err != nil {
						t.Fatal(err)
					}
					for i, q := range one.Q {
						if got.Q[i] != q {
							t.Fatalf("W%d group %d act %v block %d: code %d: got %d; want %d (block 1)", bits, gs, act, b, i, got.Q[i], q)
						}
					}
					for i, s := range one.Scales {
						if math.Abs(got.Scales[i]-s) > scaleTol*s {
							t.Fatalf("W%d group %d act %v block %d: scale %d: got %.17g; want %.17g (block 1)", bits, gs, act, b, i, got.Scales[i], s)
						}
					}
				}
			}
		}
	}
}

// TestGPTQIdentityHessianIsRoundToNearest: with uncorrelated inputs of
// equal power (H = I) there is nothing to compensate: GPTQ rounds to
// nearest exactly.
func TestGPTQIdentityHessianIsRoundToNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	const rows, cols = 8, 50
	w := randMatrix(rng, rows, cols)
	h := make([]float64, cols*cols)
	for i := 0; i < cols; i++ {
		h[i*cols+i] = 1
	}
	for _, bits := range []int{1, 2, 3, 4, 8} {
		for _, gs := range []int{0, 16} {
			want, err := QuantizeMatrix(w, rows, cols, bits, gs, true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := GPTQ(w, rows, cols, h, GPTQOptions{Bits: bits, GroupSize: gs, MSE: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := range want.Q {
				if got.Q[i] != want.Q[i] {
					t.Fatalf("W%d group %d: code %d: got %d; want %d", bits, gs, i, got.Q[i], want.Q[i])
				}
			}
		}
	}
}

// TestGPTQDeadInputsAndErrors: a column whose input is never active
// (zero row and column of H) is rounded to nearest; bad requests are
// errors.
func TestGPTQDeadInputsAndErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 1))
	const rows, cols, n = 6, 20, 80
	w := randMatrix(rng, rows, cols)
	x := correlated(rng, cols, n, 5)
	for s := 0; s < n; s++ {
		x[3*n+s] = 0 // input 3 is dead
	}
	h := gram(x, cols, n)
	g, err := GPTQ(w, rows, cols, h, GPTQOptions{Bits: 3})
	if err != nil {
		t.Fatal(err)
	}
	rtn, _ := QuantizeMatrix(w, rows, cols, 3, 0, false)
	codes, _ := naiveGPTQ(w, rows, cols, h, 3, 0, false, false, false)
	for r := 0; r < rows; r++ {
		if i := r*cols + 3; g.Q[i] != codes[i] || g.Q[i] != rtn.Q[i] {
			t.Errorf("dead column, row %d: got %d; want %d (reference) and %d (round-to-nearest)", r, g.Q[i], codes[i], rtn.Q[i])
		}
	}
	// H's scale does not matter, dead inputs included.
	small := append([]float64(nil), h...)
	for i := range small {
		small[i] *= 1e-9
	}
	gs, err := GPTQ(w, rows, cols, small, GPTQOptions{Bits: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range g.Q {
		if gs.Q[i] != q {
			t.Fatalf("H scaled by 1e-9: code %d: got %d; want %d", i, gs.Q[i], q)
		}
	}
	if e, eRTN := outputError(w, g.Dequantize(), rows, cols, x, n), outputError(w, rtn.Dequantize(), rows, cols, x, n); e >= eRTN {
		t.Errorf("with a dead input: GPTQ error %g; want below round-to-nearest's %g", e, eRTN)
	}
	for _, c := range []struct {
		name string
		h    []float64
		opt  GPTQOptions
	}{
		{"9 bits", h, GPTQOptions{Bits: 9}},
		{"0 bits", h, GPTQOptions{Bits: 0}},
		{"short H", h[:cols], GPTQOptions{Bits: 4}},
		{"negative damping", h, GPTQOptions{Bits: 4, Damp: -1}},
		{"negative diagonal", negDiag(h, cols), GPTQOptions{Bits: 4}},
	} {
		if _, err := GPTQ(w, rows, cols, c.h, c.opt); err == nil {
			t.Errorf("%s: got no error", c.name)
		}
	}
}

func negDiag(h []float64, cols int) []float64 {
	h = append([]float64(nil), h...)
	h[0] = -1
	return h
}

// BenchmarkGPTQ times GPTQ of a 512×4608 layer (ResNet18 layer4's 3×3
// convolutions: 512 channels of 512·3·3 inputs) at 4 bits, per channel,
// with groups of 128 and with act-order, on an AR(1) input correlation
// H_ij = 0.9^|i−j|. It reports the calling thread's CPU seconds per run
// (OpenBLAS runs on it, one thread) next to the wall time, since the
// machine may be shared.
func BenchmarkGPTQ(b *testing.B) {
	const rows, cols = 512, 4608
	rng := rand.New(rand.NewPCG(16, 1))
	w := randMatrix(rng, rows, cols)
	pow := make([]float64, cols)
	for k := range pow {
		pow[k] = math.Pow(0.9, float64(k))
	}
	h := make([]float64, cols*cols)
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			h[i*cols+j] = pow[max(i-j, j-i)]
		}
	}
	for _, c := range []struct {
		name string
		opt  GPTQOptions
	}{{"perchannel", GPTQOptions{Bits: 4}}, {"group128", GPTQOptions{Bits: 4, GroupSize: 128}}, {"actorder", GPTQOptions{Bits: 4, ActOrder: true}}} {
		b.Run(c.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, ok0 := cputime.Thread()
			n := 0
			for b.Loop() {
				if _, err := GPTQ(w, rows, cols, h, c.opt); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if cpu1, ok1 := cputime.Thread(); ok0 && ok1 {
				b.ReportMetric((cpu1-cpu0).Seconds()/float64(n), "cpu-s/op")
			}
		})
	}
}

// TestGPTQThreadCount: with one and two BLAS threads GPTQ gives the same
// codes; group scales taken from updated weights may differ in the last
// bits (OpenBLAS sums in another order with more threads), as the float
// engine's results do (network/doc.go).
func TestGPTQThreadCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 1))
	const rows, cols, n = 256, 512, 700
	w := randMatrix(rng, rows, cols)
	h := gram(correlated(rng, cols, n, 100), cols, n)
	defer network.SetBLASThreads(1)
	var runs [2]*GroupQuant
	for i, threads := range []int{1, 2} {
		network.SetBLASThreads(threads)
		g, err := GPTQ(w, rows, cols, h, GPTQOptions{Bits: 3, GroupSize: 64, MSE: true})
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = g
	}
	for i, s := range runs[0].Scales {
		if math.Abs(runs[1].Scales[i]-s) > scaleTol*s {
			t.Fatalf("scale %d: got %.17g with 2 threads; want %.17g (1 thread)", i, runs[1].Scales[i], s)
		}
	}
	for i, q := range runs[0].Q {
		if runs[1].Q[i] != q {
			t.Fatalf("code %d: got %d with 2 threads; want %d (1 thread)", i, runs[1].Q[i], q)
		}
	}
}

// TestOBSUpdateIsLeastSquares checks the reference's update rule itself:
// with column 0 fixed at its rounded value, the OBS update
// δ_F = −(w₀ − ŵ₀)/[H⁻¹]₀₀ · [H⁻¹]_{F,0} of the other columns is the
// minimiser of (w − w′)ᵀH(w − w′), i.e. the solution of
// H_FF (w′_F − w_F) = −H_F0 (ŵ₀ − w₀), solved here directly.
func TestOBSUpdateIsLeastSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 1))
	const cols, n = 6, 20
	h := gram(correlated(rng, cols, n, 4), cols, n)
	for i := 0; i < cols; i++ {
		h[i*cols+i] += 0.05
	}
	w := randMatrix(rng, 1, cols)
	q := math.Round(w[0]) // any fixed value of column 0
	hinv := invert(h, cols)
	m := cols - 1
	hff := make([]float64, m*m)
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			hff[i*m+j] = h[(i+1)*cols+j+1]
		}
	}
	hffInv := invert(hff, m)
	for i := 0; i < m; i++ {
		obs := -(w[0] - q) / hinv[0] * hinv[i+1]
		ls := 0.0
		for j := 0; j < m; j++ {
			ls -= hffInv[i*m+j] * h[(j+1)*cols] * (q - w[0])
		}
		if math.Abs(obs-ls) > refCond*math.Max(1, math.Abs(ls)) {
			t.Errorf("column %d: OBS update %.17g; want the least-squares %.17g", i+1, obs, ls)
		}
	}
}
