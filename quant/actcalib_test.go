package quant

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

var allCalibs = []ActCalib{{}, {Method: CalibPercentile, Percentile: DefaultPercentile}, {Method: CalibPercentile, Percentile: 99}, {Method: CalibMSE}, {Method: CalibKL}}

func TestParseActCalib(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ActCalib
		str  string
	}{
		{"minmax", ActCalib{}, "minmax"},
		{"percentile", ActCalib{CalibPercentile, 99.99}, "percentile"},
		{"percentile:99.99", ActCalib{CalibPercentile, 99.99}, "percentile"},
		{"percentile:99.9", ActCalib{CalibPercentile, 99.9}, "percentile:99.9"},
		{"percentile:100", ActCalib{CalibPercentile, 100}, "percentile:100"},
		{"mse", ActCalib{Method: CalibMSE}, "mse"},
		{"kl", ActCalib{Method: CalibKL}, "kl"},
	} {
		got, err := ParseActCalib(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseActCalib(%q): got %+v (%q), %v; want %+v (%q)", tc.in, got, got.String(), err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"", "max", "percentile:", "percentile:49", "percentile:101", "percentile:x", "mse:3", "minmax:1", "KL"} {
		if _, err := ParseActCalib(bad); err == nil {
			t.Errorf("ParseActCalib(%q): got no error", bad)
		}
	}
}

// stats returns the stats of v for c.
func stats(c ActCalib, v []float64) *ActStats {
	s := NewActStats(c)
	s.Add(v)
	return s
}

// Minmax ranges are the values' extremes, with or without histograms.
func TestActStatsMinMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	v := make([]float64, 5000)
	for i := range v {
		v[i] = rng.NormFloat64()*3 + 1
	}
	want := [2]float64{slices.Min(v), slices.Max(v)}
	for _, c := range allCalibs {
		if got := stats(c, v).Range(ActCalib{}); got != want {
			t.Errorf("stats for %s, minmax range: got %v; want %v", c, got, want)
		}
	}
	if got := stats(ActCalib{}, []float64{math.NaN(), 1}).Range(ActCalib{}); !math.IsNaN(got[0]) {
		t.Errorf("minmax with a NaN: got %v; want NaN as math.Min gives", got)
	}
	if got := stats(ActCalib{Method: CalibKL}, []float64{math.Inf(1), -1, 2}).Range(ActCalib{Method: CalibKL}); got != [2]float64{-1, math.Inf(1)} {
		t.Errorf("kl with +Inf: got %v; want [-1 +Inf] (the extremes)", got)
	}
}

// Stats of parts merged in any order equal the stats of the whole: every
// method's range is the same bit for bit.
func TestActStatsMergeExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	v := make([]float64, 20000)
	for i := range v {
		x := rng.ExpFloat64() * 0.3
		if i%3 == 0 {
			x = -x / 4
		}
		if i%7 == 0 {
			x = 0
		}
		if i == 12345 {
			x = 40 // grows the positive side's exponent late
		}
		v[i] = x
	}
	for _, c := range allCalibs {
		want := stats(c, v).Range(c)
		for _, cuts := range [][]int{{0, 20000}, {0, 10, 12345, 12346, 20000}, {0, 5000, 9000, 19999, 20000}} {
			parts := make([]*ActStats, len(cuts)-1)
			for i := range parts {
				parts[i] = stats(c, v[cuts[i]:cuts[i+1]])
			}
			for _, order := range [][]int{nil, {1}} {
				m := NewActStats(c)
				idx := make([]int, len(parts))
				for i := range idx {
					idx[i] = i
				}
				if order != nil {
					slices.Reverse(idx)
				}
				for _, i := range idx {
					m.Merge(parts[i])
				}
				if got := m.Range(c); got != want {
					t.Errorf("%s, parts %v (reversed %t): got %v; want %v (the whole)", c, cuts, order != nil, got, want)
				}
			}
		}
	}
}

// The percentile's range, computed by hand: values 1..10000 have their
// 99.9th percentile at the 9990th value, 9990; the histogram covers
// [0, 2^14) in bins of 4, and 9990 lies in [9988, 9992), so hi = 9992.
// Values -1..-100 at the 99th: the 99th value, 99, in the bin [99, 99 +
// 1/32) of the side's grid [0, 128) in bins of 1/32: lo = -99.03125.
func TestPercentileHandComputed(t *testing.T) {
	var v []float64
	for i := 1; i <= 10000; i++ {
		v = append(v, float64(i))
	}
	c := ActCalib{Method: CalibPercentile, Percentile: 99.9}
	if got := stats(c, v).Range(c); got != [2]float64{1, 9992} {
		t.Errorf("1..10000 at 99.9%%: got %v; want [1 9992]", got)
	}
	var n []float64
	for i := 1; i <= 100; i++ {
		n = append(n, -float64(i), 0.5)
	}
	c = ActCalib{Method: CalibPercentile, Percentile: 99}
	if got := stats(c, n).Range(c); got != [2]float64{-99.03125, 0.5} {
		t.Errorf("-1..-100 at 99%%: got %v; want [-99.03125 0.5]", got)
	}
	c.Percentile = 100
	if got := stats(c, n).Range(c); got != [2]float64{-100, 0.5} {
		t.Errorf("-1..-100 at 100%%: got %v; want [-100 0.5] (the extremes)", got)
	}
}

// exactMSE is the mean squared error of fake-quantizing v with the
// quantizer of range r.
func exactMSE(v []float64, r [2]float64) float64 {
	q := ActFromRange(r[0], r[1])
	e := 0.0
	for _, x := range v {
		d := q.Fake(x) - x
		e += d * d
	}
	return e / float64(len(v))
}

// mseTol bounds how much the mse method's range may lose, in exact MSE on
// the values, to the best threshold of a brute-force grid: its errors are
// taken at bin centres (at least 2048 bins over the values) and its
// thresholds on 512 candidates, each within 1/512 of the range of the
// best, which moves the MSE by a few percent at most at the optimum.
const mseTol = 0.03

// The mse method against brute force: over 4000 thresholds t equally
// spaced in (0, max|x|], the exact MSE of the range clipped to [-t, t] on
// the values themselves; mse's range is within mseTol of the least of
// them, and below minmax's where outliers stretch the range.
func TestMSEAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	relu := make([]float64, 20000)
	lap := make([]float64, 20000)
	for i := range relu {
		relu[i] = math.Max(0, rng.NormFloat64())
		lap[i] = rng.ExpFloat64() * float64(1-2*(i%2))
	}
	relu[7], lap[9] = 25, -30 // outliers
	c := ActCalib{Method: CalibMSE}
	for name, v := range map[string][]float64{"relu(normal)": relu, "laplace": lap} {
		s := stats(c, v)
		got := s.Range(c)
		m := math.Max(s.Max, -s.Min)
		best := math.Inf(1)
		for k := 1; k <= 4000; k++ {
			tt := m * float64(k) / 4000
			best = math.Min(best, exactMSE(v, s.clip(tt)))
		}
		e := exactMSE(v, got)
		if e > best*(1+mseTol) {
			t.Errorf("%s: mse range %v has MSE %.4g; want within %.0f%% of brute force's %.4g", name, got, e, 100*mseTol, best)
		}
		if mm := exactMSE(v, [2]float64{s.Min, s.Max}); e >= mm {
			t.Errorf("%s: mse range %v has MSE %.4g; want below minmax's %.4g", name, got, e, mm)
		}
		t.Logf("%s: range %v, MSE %.4g; brute force %.4g; minmax %.4g", name, got, e, best, exactMSE(v, [2]float64{s.Min, s.Max}))
	}
}

// The KL method on a Laplace sample (scale 1, 100,000 magnitudes) with 20
// outliers between 50 and 60: the threshold cuts the outliers (below 50)
// and keeps the bulk (above ln(1000) = 6.9, the magnitude only 0.1% of
// the sample exceeds): the outliers are 0.02% of the mass, too little to
// pay for 255 codes stretched over them.
func TestKLCutsOutliers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	v := make([]float64, 0, 100020)
	for range 100000 {
		v = append(v, rng.ExpFloat64())
	}
	for i := range 20 {
		v = append(v, 50+float64(i)/2)
	}
	c := ActCalib{Method: CalibKL}
	got := stats(c, v).Range(c)
	if got[0] != slices.Min(v) || !(got[1] > math.Log(1000) && got[1] < 50) {
		t.Errorf("kl range %v; want [%g, t] with t in (%.2f, 50)", got, slices.Min(v), math.Log(1000))
	}
	t.Logf("kl range %v", got)
	// With both signs (every other value negated, outliers on both sides)
	// each side gets its own threshold, and each cuts its outliers.
	for i := range v {
		if i%2 == 1 {
			v[i] = -v[i]
		}
	}
	got = stats(c, v).Range(c)
	if !(got[0] < -math.Log(1000) && got[0] > -50 && got[1] > math.Log(1000) && got[1] < 50) {
		t.Errorf("kl range of the signed sample %v; want both ends' magnitudes in (%.2f, 50)", got, math.Log(1000))
	}
	t.Logf("kl range, signed %v", got)
}

// minMax equals folding math.Min and math.Max bit for bit, on random
// values mixed with ±0, ±Inf, NaN and subnormals, from the empty start
// (+Inf, -Inf) and from starts that are themselves extreme.
func TestMinMaxMatchesMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 5e-324, -5e-324, math.MaxFloat64, -math.MaxFloat64}
	starts := [][2]float64{{math.Inf(1), math.Inf(-1)}, {0, 0}, {math.Copysign(0, -1), math.Copysign(0, -1)}, {-3, 7}, {math.NaN(), 1}}
	for trial := 0; trial < 2000; trial++ {
		v := make([]float64, rng.IntN(12))
		for i := range v {
			if rng.IntN(3) == 0 {
				v[i] = special[rng.IntN(len(special))]
				if trial < 1000 && math.IsNaN(v[i]) {
					v[i] = 1 // half the trials without NaN
				}
			} else {
				v[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
			}
		}
		for _, st := range starts {
			wlo, whi := st[0], st[1]
			for _, x := range v {
				wlo, whi = math.Min(wlo, x), math.Max(whi, x)
			}
			glo, ghi := minMax(v, st[0], st[1])
			if math.Float64bits(glo) != math.Float64bits(wlo) || math.Float64bits(ghi) != math.Float64bits(whi) {
				t.Fatalf("minMax(%v, %v, %v) = %v, %v; want %v, %v (math.Min, math.Max)", v, st[0], st[1], glo, ghi, wlo, whi)
			}
		}
	}
}

// BenchmarkMinMax times minMax against the math.Min/math.Max fold it
// replaced, on a ReLU-like activation (half zeros) of 1M values.
func BenchmarkMinMax(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	v := make([]float64, 1<<20)
	for i := range v {
		v[i] = max(0, rng.NormFloat64())
	}
	b.Run("minMax", func(b *testing.B) {
		for b.Loop() {
			minMax(v, math.Inf(1), math.Inf(-1))
		}
	})
	b.Run("math.Min,math.Max", func(b *testing.B) {
		for b.Loop() {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, x := range v {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
			_, _ = lo, hi
		}
	})
}
