package sensitivity

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// stderrTol bounds the relative difference between Welford's one-pass
// recurrence (stderrOfSum) and the two-pass formula on the same values:
// both are backward stable, so they agree to a few ulps times the number
// of chunks (at most a few hundred here); 1e-10 leaves ample room.
const stderrTol = 1e-10

// twoPassStderr is the plain two-pass reference: the mean of the chunk
// values, then the sum of squared deviations from it, and sqrt(U) times
// the sample standard deviation.
func twoPassStderr(d []float64) float64 {
	u := float64(len(d))
	mean := 0.0
	for _, v := range d {
		mean += v
	}
	mean /= u
	ss := 0.0
	for _, v := range d {
		ss += (v - mean) * (v - mean)
	}
	return math.Sqrt(u * ss / (u - 1))
}

func TestStderrOfSumTwoPass(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for _, c := range []struct {
		name   string
		n      int
		offset float64
	}{{"small", 2, 0}, {"chunks", 64, 0}, {"large offset", 200, 1e3}, {"tiny values", 37, 1e-9}} {
		d := make([]float64, c.n)
		for i := range d {
			d[i] = c.offset + 1e-3*rng.NormFloat64()
		}
		got, want := stderrOfSum(d), twoPassStderr(d)
		if math.Abs(got-want) > stderrTol*want {
			t.Errorf("%s: got %.17g; want %.17g (two-pass)", c.name, got, want)
		}
	}
	if got := stderrOfSum([]float64{0.3}); got != 0 {
		t.Errorf("one chunk: got %g; want 0 (spread unknown)", got)
	}
}

// The direct metric's standard error on the integer engine equals the
// two-pass standard error of the per-chunk loss changes, computed
// independently: every cell's configuration compiled alone and run as
// simulated quantization (intengine.Reference) on each mini-batch, the
// logits cut into chunks of directChunk samples. LeNet with labels
// (cross-entropy), the residual model with KL; the table is the same for
// any thread count (TestDirectIntMatchesSimulation checks the bytes).
func TestDirectStderrMatchesTwoPass(t *testing.T) {
	lenet, calib := loadFixture(t)
	resNet, resData := residualData(t, 45)
	bits := []int{1, 2, 4, 8}
	for _, tc := range []struct {
		name  string
		net   *network.Network
		n     int
		batch int
	}{{"lenet", lenet, 100, 40}, {"residual", resNet, 45, 20}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ds := resData
			if tc.name == "lenet" {
				ds = calib.Subset(0, tc.n)
			}
			tab, err := Compute(ctx, tc.net, ds, Config{Bits: bits, Metrics: []string{MetricDirect}, Trace: TraceNone, Batch: tc.batch, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			o, err := NewOracle(ctx, tc.net, ds, OracleOptions{Batch: tc.batch})
			if err != nil {
				t.Fatal(err)
			}
			want := simulatedChunkStderr(t, tc.net, o, bits)
			positive := 0
			for li, l := range tab.Layers {
				for j, b := range bits {
					got, ok := l.Stderr[MetricDirect][b]
					if !ok {
						t.Fatalf("%s at %d bits: no standard error in the table", l.Name, b)
					}
					if math.Abs(got-want[li][j]) > stderrTol*want[li][j] {
						t.Errorf("%s at %d bits: stderr got %.17g; want %.17g (two-pass over simulated chunks)", l.Name, b, got, want[li][j])
					}
					if got > 0 {
						positive++
					}
				}
			}
			if positive < len(tab.Layers) {
				t.Errorf("only %d positive standard errors; want one per layer at least (the 1-bit cells)", positive)
			}
		})
	}
}

// simulatedChunkStderr is the reference of TestDirectStderrMatchesTwoPass.
func simulatedChunkStderr(t *testing.T, net *network.Network, o *Oracle, bits []int) [][]float64 {
	t.Helper()
	ctx := context.Background()
	ranges, err := intengine.ObserveRanges(ctx, net, o.batches)
	if err != nil {
		t.Fatal(err)
	}
	nl := len(net.Layers())
	chunkLosses := func(cfgBits []int) []float64 {
		m, err := intengine.Compile(net, intengine.Config{Bits: cfgBits, Ranges: ranges})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := intengine.NewReference(m)
		if err != nil {
			t.Fatal(err)
		}
		var out []float64
		for bi, x := range o.batches {
			r, err := ref.RunInt(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			n, c := r.Output.Shape[0], r.Output.Shape[1]
			for s := 0; s < n; s += directChunk {
				k := min(directChunk, n-s)
				cl, err := sliceLoss(o.losses[bi], s, k)
				if err != nil {
					t.Fatal(err)
				}
				z := r.Output.Data[s*c : (s+k)*c]
				l, _, err := cl.Eval(&tensor.Tensor{Shape: []int{k, c}, Data: z})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, l)
			}
		}
		return out
	}
	all8 := slices.Repeat([]int{8}, nl)
	base := chunkLosses(all8)
	out := make([][]float64, nl)
	for li := range out {
		for _, b := range bits {
			if b == 8 {
				out[li] = append(out[li], 0)
				continue
			}
			cb := slices.Clone(all8)
			cb[li] = b
			l := chunkLosses(cb)
			d := make([]float64, len(l))
			for u := range l {
				d[u] = l[u] - base[u]
			}
			out[li] = append(out[li], twoPassStderr(d))
		}
	}
	return out
}

// leastMonotoneMajorant is the brute-force reference of the monotone
// repair for integer values in [lo, hi]: among all functions of the
// widths with values in [lo, hi] that are non-increasing in bits and
// nowhere below v, the one of least sum (the pointwise least, which is
// unique).
func leastMonotoneMajorant(v []int, lo, hi int) []int {
	n := len(v)
	var best []int
	bestSum := math.MaxInt
	f := make([]int, n)
	var rec func(j int)
	rec = func(j int) {
		if j == n {
			s := 0
			for _, x := range f {
				s += x
			}
			if s < bestSum {
				best, bestSum = slices.Clone(f), s
			}
			return
		}
		for x := lo; x <= hi; x++ {
			if x < v[j] || (j > 0 && x > f[j-1]) {
				continue // below v, or above a narrower width's value
			}
			f[j] = x
			rec(j + 1)
		}
	}
	rec(0)
	return best
}

func TestMonotoneRepairBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 2))
	for trial := range 300 {
		n := 1 + rng.IntN(5)
		v := make([]int, n)
		vf := make([]float64, n)
		for j := range v {
			v[j] = rng.IntN(6) - 2 // -2..3
			vf[j] = float64(v[j])
		}
		got, noise, repaired := searchValues(ascending(n), vf, make([]float64, n), NoiseK)
		want := leastMonotoneMajorant(v, -2, 3)
		changed := 0
		for j := range want {
			if got[j] != float64(want[j]) {
				t.Fatalf("trial %d: values %v: got %v; want %v (brute force)", trial, v, got, want)
			}
			if want[j] != v[j] {
				changed++
			}
		}
		if noise != 0 || repaired != changed {
			t.Errorf("trial %d: values %v: got %d noise, %d repaired; want 0 and %d", trial, v, noise, repaired, changed)
		}
	}
}

func TestSearchValuesNoise(t *testing.T) {
	for _, c := range []struct {
		name           string
		v, se, want    []float64 // at widths ascending, e.g. 2,3,4,8
		noise, repairs int
	}{
		// Inside the band: the noise bound 2·se, not the measured value.
		{"noise priced at the bound", []float64{0.001}, []float64{0.003}, []float64{0.006}, 1, 0},
		{"negative noise", []float64{-0.005}, []float64{0.003}, []float64{0.006}, 1, 0},
		// Outside the band: the signed value itself.
		{"significant increase", []float64{0.01}, []float64{0.003}, []float64{0.01}, 0, 0},
		{"significant decrease", []float64{-0.01}, []float64{0.003}, []float64{-0.01}, 0, 0},
		{"no stderr", []float64{0}, []float64{0}, []float64{0}, 0, 0},
		// Issue 14's conv1 row (2, 3, 4, 8 bits): the 3-bit value below
		// the 4-bit one is raised to it.
		{"issue 14 conv1", []float64{2.5, 0.36, 1.86, 0}, []float64{0.05, 0.04, 0.05, 0}, []float64{2.5, 1.86, 1.86, 0}, 0, 1},
		// A residual branch: measured changes near 0 at 2..4 bits with a
		// wide spread at 2 bits; the 2-bit cell costs its noise bound and
		// the 3-bit noise cell is lifted to the 4-bit significant value.
		{"residual branch", []float64{0.0004, -0.0001, 0.003, 0}, []float64{0.004, 0.001, 0.0005, 0}, []float64{0.008, 0.003, 0.003, 0}, 2, 1},
	} {
		got, noise, repaired := searchValues(ascending(len(c.v)), c.v, c.se, NoiseK)
		if !slices.Equal(got, c.want) || noise != c.noise || repaired != c.repairs {
			t.Errorf("%s: got %v (%d noise, %d repaired); want %v (%d, %d)", c.name, got, noise, repaired, c.want, c.noise, c.repairs)
		}
	}
}

// A table written before standard errors existed (no stderr field; the
// direct metric clamped at 0) still reads, and its search input is the
// monotone repair alone.
const oldTable = `model: resnet.onnx
samples: 768
loss: cross-entropy
metric: direct
trace: exact
bits: [2, 3, 4, 8]
layers:
  - name: conv1
    op: Conv
    params: 144
    delta: {2: 0.5, 3: 0.1, 4: 0.02, 8: 0.0001}
    omega: {2: 2.5, 3: 0.36, 4: 1.86, 8: 0}
    metrics:
      direct: {2: 2.5, 3: 0.36, 4: 1.86, 8: 0}
      fisher: {2: 0.9, 3: 0.2, 4: 0.05, 8: 0.0002}
  - name: block1.conv2
    op: Conv
    params: 2304
    delta: {2: 0.5, 3: 0.1, 4: 0.02, 8: 0.0001}
    omega: {2: 0, 3: 0, 4: 0, 8: 0}
    metrics:
      direct: {2: 0, 3: 0, 4: 0, 8: 0}
      fisher: {2: 0.03, 3: 0.01, 4: 0.002, 8: 0.00001}
`

func TestOldTableReads(t *testing.T) {
	tab, err := Read(strings.NewReader(oldTable), "old.yaml")
	if err != nil {
		t.Fatalf("a table without standard errors: %v", err)
	}
	in, err := tab.SearchInput("", []int{2, 3, 4, 8})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float64{{2.5, 1.86, 1.86, 0}, {0, 0, 0, 0}}
	if !reflect.DeepEqual(in.Omega, want) || in.Noise != 0 || in.Repaired != 1 {
		t.Errorf("search input: got %v (%d noise, %d repaired); want %v (0, 1)", in.Omega, in.Noise, in.Repaired, want)
	}
	if _, err := tab.SearchInput(MetricHessian, []int{2, 8}); err == nil || !strings.Contains(err.Error(), "hessian") {
		t.Errorf("a metric the table lacks: got %v; want an error naming it", err)
	}
}

// Standard errors survive the YAML round trip, the omega column's search
// input uses the table metric's standard errors, and a negative standard
// error is refused.
func TestStderrRoundTrip(t *testing.T) {
	src := oldTable + `    stderr:
      direct: {2: 0.004, 3: 0.001, 4: 0.0005, 8: 0}
`
	src = strings.Replace(src, "direct: {2: 0, 3: 0, 4: 0, 8: 0}", "direct: {2: 0.0004, 3: -0.0001, 4: 0.002, 8: 0}", 1)
	src = strings.Replace(src, "omega: {2: 0, 3: 0, 4: 0, 8: 0}", "omega: {2: 0.0004, 3: -0.0001, 4: 0.002, 8: 0}", 1)
	tab, err := Read(strings.NewReader(src), "new.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := tab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Read(bytes.NewReader(b), "round trip")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, tab) {
		t.Errorf("round trip changed the table:\n got %+v\nwant %+v", back.Layers[1], tab.Layers[1])
	}
	if got, want := back.Layers[1].Stderr[MetricDirect][2], 0.004; got != want {
		t.Errorf("stderr at 2 bits after the round trip: got %g; want %g", got, want)
	}
	in, err := back.SearchInput("", []int{2, 3, 4, 8})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float64{0.008, 0.002, 0.002, 0}; !slices.Equal(in.Omega[1], want) {
		t.Errorf("omega column's search input: got %v; want %v (the direct metric's standard errors apply)", in.Omega[1], want)
	}
	bad := strings.Replace(src, "{2: 0.004,", "{2: -0.004,", 1)
	if _, err := Read(strings.NewReader(bad), "bad.yaml"); err == nil || !strings.Contains(err.Error(), "stderr.direct") {
		t.Errorf("negative stderr: got %v; want an error naming stderr.direct", err)
	}
}

// ascending returns n per-channel widths in ascending order.
func ascending(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// TestSearchValuesGroups checks the monotone repair per granularity: each
// group size's widths are repaired among themselves, per-channel widths
// among themselves, and an option in groups is not raised to a wider
// per-channel value (nor the reverse).
func TestSearchValuesGroups(t *testing.T) {
	bits := quant.SortOptions([]int{2, 3, 4, 8, quant.OptionCode(2, 64), quant.OptionCode(3, 64), quant.OptionCode(4, 64)})
	// bits: 2, 2g64, 3, 3g64, 4, 4g64, 8
	v := []float64{5, 1, 2, 0.5, 3, 0.7, 0}
	want := []float64{5, 1, 3, 0.7, 3, 0.7, 0}
	got, _, repaired := searchValues(bits, v, make([]float64, len(v)), NoiseK)
	if !slices.Equal(got, want) || repaired != 2 {
		t.Errorf("options %v, values %v: got %v (%d repaired); want %v (2 repaired)", quant.FormatOptions(bits), v, got, repaired, want)
	}
}
