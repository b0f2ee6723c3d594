package quant

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Activation calibration methods (ActCalib.Method): how an activation
// quantizer's range is chosen from the values observed on calibration data.
const (
	CalibMinMax     = "minmax"
	CalibPercentile = "percentile"
	CalibMSE        = "mse"
	CalibKL         = "kl"
)

// CalibMethods lists the activation calibration methods.
var CalibMethods = []string{CalibMinMax, CalibPercentile, CalibMSE, CalibKL}

// DefaultPercentile is the percentile of each side's magnitudes that
// "percentile" keeps unless told otherwise ("percentile:99.9").
const DefaultPercentile = 99.99

// ActCalib says how activation ranges are chosen. The zero value is
// minmax, the range of every observed value (what mpsearch did before the
// other methods existed), so a zero ActCalib leaves results and cache keys
// of earlier versions unchanged. Values are comparable; ParseActCalib
// gives the canonical value of a spelling.
type ActCalib struct {
	// Method is CalibPercentile, CalibMSE or CalibKL; "" is minmax.
	Method string `json:",omitempty"`
	// Percentile (percentile only) is p in (0, 100]: each side keeps the
	// magnitudes up to its p-th percentile.
	Percentile float64 `json:",omitempty"`
}

// ParseActCalib reads minmax, percentile, percentile:P (P in [50, 100]),
// mse or kl.
func ParseActCalib(s string) (ActCalib, error) {
	name, arg, hasArg := strings.Cut(strings.TrimSpace(s), ":")
	switch {
	case name == CalibPercentile:
		p := DefaultPercentile
		if hasArg {
			var err error
			if p, err = strconv.ParseFloat(arg, 64); err != nil || !(p >= 50 && p <= 100) {
				return ActCalib{}, fmt.Errorf("activation calibration %q: the percentile %q is not a number in [50, 100]", s, arg)
			}
		}
		return ActCalib{Method: CalibPercentile, Percentile: p}, nil
	case hasArg:
	case name == CalibMinMax:
		return ActCalib{}, nil
	case name == CalibMSE || name == CalibKL:
		return ActCalib{Method: name}, nil
	}
	return ActCalib{}, fmt.Errorf("activation calibration %q is not minmax, percentile[:P], mse or kl", s)
}

// String is the canonical spelling ParseActCalib reads back.
func (c ActCalib) String() string {
	switch c.Method {
	case "", CalibMinMax:
		return CalibMinMax
	case CalibPercentile:
		if c.Percentile == DefaultPercentile {
			return CalibPercentile
		}
		return CalibPercentile + ":" + strconv.FormatFloat(c.Percentile, 'g', -1, 64)
	}
	return c.Method
}

// needsHist says whether the method needs histograms (all but minmax).
func (c ActCalib) needsHist() bool { return c.Method != "" && c.Method != CalibMinMax }

// histBins is the number of bins of each side's histogram. A side's bins
// cover [0, 2^e) with e the least exponent above its largest magnitude, so
// between histBins/2 and histBins bins cover the observed magnitudes: at
// least TensorRT's 2048 bins over [0, max|x|].
const (
	histLog2Bins = 12
	histBins     = 1 << histLog2Bins
	// minHistExp bounds the exponent below so that 2^(histLog2Bins-e)
	// stays finite (magnitudes below 2^-1000 all fall in bin 0).
	minHistExp = -1000
)

// sideHist is the histogram of one side's magnitudes (x > 0 or -x for
// x < 0): bin k counts the magnitudes in [k, k+1)·2^exp/histBins. Binning
// is exact (scaling by a power of two), and the bins at exponent e+1 are
// unions of pairs of bins at e, so merging histograms of any parts of the
// data, in any order, gives the histogram of the whole exactly.
type sideHist struct {
	exp    int
	counts []int64 // nil until the side has a value
}

// grow makes the histogram cover magnitudes up to m.
func (h *sideHist) grow(m float64) {
	if !(m > 0) {
		return
	}
	_, e := math.Frexp(m) // m = f·2^e, f in [0.5, 1): m < 2^e
	e = max(e, minHistExp)
	switch {
	case h.counts == nil:
		h.counts, h.exp = make([]int64, histBins), e
	case e > h.exp:
		h.coarsen(e)
	}
}

// coarsen moves the histogram to exponent e > h.exp: bin k goes to
// k >> (e - h.exp). In place: targets are at or below their sources.
func (h *sideHist) coarsen(e int) {
	d := min(e-h.exp, histLog2Bins)
	for k, c := range h.counts {
		h.counts[k] = 0
		h.counts[k>>d] += c
	}
	h.exp = e
}

// width is the bin width.
func (h *sideHist) width() float64 { return math.Ldexp(1, h.exp-histLog2Bins) }

// total is the number of values in the histogram.
func (h *sideHist) total() int64 {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// at returns the counts at exponent e >= h.exp (a copy; zeros for an
// empty side).
func (h *sideHist) at(e int) []int64 {
	g := sideHist{exp: h.exp, counts: make([]int64, histBins)}
	copy(g.counts, h.counts)
	if h.counts != nil && e > h.exp {
		g.coarsen(e)
	}
	return g.counts
}

// quantile returns the upper edge of the bin in which the cumulative count
// reaches ceil(p/100·n), n the side's count (0 for an empty side).
func (h *sideHist) quantile(p float64) float64 {
	n := h.total()
	if n == 0 {
		return 0
	}
	target := max(1, int64(math.Ceil(p/100*float64(n))))
	var cum int64
	for k, c := range h.counts {
		if cum += c; cum >= target {
			return float64(k+1) * h.width()
		}
	}
	return float64(histBins) * h.width()
}

// ActStats collects what the calibration methods need from the values of
// one quantization point, streamed over any number of Add calls with
// bounded memory: the minimum and maximum (as math.Min and math.Max
// combine them, so minmax ranges are bit for bit those of before) and, for
// the other methods, one histogram per side (sideHist) and the count of
// exact zeros. Stats of parts of the data merged in any order equal the
// stats of the whole: ranges do not depend on batching or threads.
type ActStats struct {
	Min, Max float64
	hist     bool
	zeros    int64
	pos, neg sideHist
	// nonFinite: a value was ±Inf (the range is then [Min, Max]).
	nonFinite bool
}

// NewActStats returns empty stats for method c (histograms only when c
// needs them).
func NewActStats(c ActCalib) *ActStats {
	return &ActStats{Min: math.Inf(1), Max: math.Inf(-1), hist: c.needsHist()}
}

// Add accumulates values.
func (s *ActStats) Add(v []float64) {
	s.Min, s.Max = minMax(v, s.Min, s.Max)
	if !s.hist || s.nonFinite {
		return
	}
	pm, nm := 0.0, 0.0 // largest magnitude per side; NaN fails every test
	for _, x := range v {
		if x > pm {
			pm = x
		} else if -x > nm {
			nm = -x
		}
	}
	if math.IsInf(pm, 0) || math.IsInf(nm, 0) {
		s.nonFinite = true
		return
	}
	s.pos.grow(pm)
	s.neg.grow(nm)
	ps, ns := math.Ldexp(1, histLog2Bins-s.pos.exp), math.Ldexp(1, histLog2Bins-s.neg.exp)
	for _, x := range v {
		switch {
		case x > 0:
			s.pos.counts[int(x*ps)]++
		case x < 0:
			s.neg.counts[int(-x*ns)]++
		case x == 0:
			s.zeros++
		}
	}
}

// minMax folds math.Min over lo and v and math.Max over hi and v, bit for
// bit, without their branches on finite values: each value maps to an
// integer key ordered as the floats are (-0 below +0), and the extremes of
// the keys are taken with integer min and max. When a value or a start is
// not finite (math.Min and math.Max give ±Inf precedence over NaN), the
// fold is redone with math.Min and math.Max.
func minMax(v []float64, lo, hi float64) (float64, float64) {
	kmin, kmax := orderKey(lo), orderKey(hi)
	for _, x := range v {
		k := orderKey(x)
		kmin = min(kmin, k)
		kmax = max(kmax, k)
	}
	if kmin <= orderKey(math.Inf(-1)) || kmax >= orderKey(math.Inf(1)) || math.IsNaN(lo) || math.IsNaN(hi) {
		for _, x := range v {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
		return lo, hi
	}
	return fromOrderKey(kmin), fromOrderKey(kmax)
}

// orderKey maps x to an int64 ordered as the floats are, with -0 below +0:
// the bits of a positive x, and of a negative x its bits with the
// magnitude's 63 bits flipped (larger magnitudes lower).
func orderKey(x float64) int64 {
	b := int64(math.Float64bits(x))
	return b ^ int64(uint64(b>>63)>>1)
}

// fromOrderKey is orderKey's inverse.
func fromOrderKey(k int64) float64 {
	return math.Float64frombits(uint64(k ^ int64(uint64(k>>63)>>1)))
}

// Merge adds o's values to s (o is unchanged).
func (s *ActStats) Merge(o *ActStats) {
	s.Min, s.Max = math.Min(s.Min, o.Min), math.Max(s.Max, o.Max)
	if !s.hist {
		return
	}
	s.zeros += o.zeros
	s.nonFinite = s.nonFinite || o.nonFinite
	for _, p := range [][2]*sideHist{{&s.pos, &o.pos}, {&s.neg, &o.neg}} {
		a, b := p[0], p[1]
		if b.counts == nil {
			continue
		}
		if a.counts == nil {
			a.exp, a.counts = b.exp, append([]int64(nil), b.counts...)
			continue
		}
		e := max(a.exp, b.exp)
		if e > a.exp {
			a.coarsen(e)
		}
		for k, c := range b.at(e) {
			a.counts[k] += c
		}
	}
}

// Range returns the range method c chooses from the stats ([Min, Max] for
// minmax, for stats without histograms, and for non-finite values).
// ActFromRange turns it into a quantizer.
func (s *ActStats) Range(c ActCalib) [2]float64 {
	full := [2]float64{s.Min, s.Max}
	if !c.needsHist() || !s.hist || s.nonFinite || math.IsNaN(s.Min) || math.IsNaN(s.Max) || s.Min > s.Max {
		return full
	}
	switch c.Method {
	case CalibPercentile:
		lo, hi := s.Min, s.Max
		if s.pos.counts != nil {
			hi = math.Min(hi, s.pos.quantile(c.Percentile))
		}
		if s.neg.counts != nil {
			lo = math.Max(lo, -s.neg.quantile(c.Percentile))
		}
		return [2]float64{lo, hi}
	case CalibMSE:
		return s.mseRange()
	case CalibKL:
		return s.klRange()
	}
	return full
}

// common returns both sides' counts on one grid (the coarser exponent),
// its bin width and nb, the number of bins up to the one holding the
// largest magnitude; nb is 0 when every value is 0.
func (s *ActStats) common() (pos, neg []int64, w float64, nb int) {
	e := minHistExp
	for _, h := range []*sideHist{&s.pos, &s.neg} {
		if h.counts != nil {
			e = max(e, h.exp)
		}
	}
	pos, neg = s.pos.at(e), s.neg.at(e)
	for k := histBins - 1; k >= 0; k-- {
		if pos[k] != 0 || neg[k] != 0 {
			nb = k + 1
			break
		}
	}
	return pos, neg, math.Ldexp(1, e-histLog2Bins), nb
}

// clip is the range [Min, Max] clipped to [-t, t].
func (s *ActStats) clip(t float64) [2]float64 {
	return [2]float64{math.Max(s.Min, -t), math.Min(s.Max, t)}
}

// mseCandidates is the number of clipping thresholds "mse" tries: the
// bin edges k·w for k = ceil(j·nb/mseCandidates), j = 1..mseCandidates,
// the last of which (k = nb) keeps the whole range.
const mseCandidates = 512

// mseRange returns the range [Min, Max] clipped to [-t, t] for the
// candidate threshold t whose quantizer (ActFromRange) has the least
// squared error over the histograms, every value taken at its bin's
// centre (within [Min, Max]) and zeros exact (they always are); the
// largest t on ties. Minmax is a candidate, so on the histograms the
// result is never worse than it.
func (s *ActStats) mseRange() [2]float64 {
	pos, neg, w, nb := s.common()
	best, bestR := math.Inf(1), [2]float64{s.Min, s.Max}
	prev := 0
	for j := 1; j <= mseCandidates && nb > 0; j++ {
		k := (j*nb + mseCandidates - 1) / mseCandidates
		if k == prev {
			continue
		}
		prev = k
		r := s.clip(float64(k) * w)
		q := ActFromRange(r[0], r[1])
		e := 0.0
		for b := 0; b < nb; b++ {
			c := (float64(b) + 0.5) * w
			if n := pos[b]; n != 0 {
				x := math.Min(c, s.Max)
				d := q.Fake(x) - x
				e += float64(n) * d * d
			}
			if n := neg[b]; n != 0 {
				x := math.Max(-c, s.Min)
				d := q.Fake(x) - x
				e += float64(n) * d * d
			}
		}
		if e <= best {
			best, bestR = e, r
		}
	}
	return bestR
}

// klRange is TensorRT's entropy calibration as NVIDIA's
// pytorch-quantization computes it (calib/histogram.py,
// _compute_amax_entropy), on each side's histogram of magnitudes (exact
// zeros left out, as it leaves out its zero bin): klThreshold's i bins of
// width w make the side's threshold i·w. levels is 256 (all of uint8) when
// the values have one sign, 128 per side when they have both, as a
// symmetric int8 quantizer has. Per side rather than on |x| of both: a
// normalised image's background is one negative value, a spike that on
// the combined histogram draws the threshold of the image's positive side
// down to it (on the fixture LeNet's input, 0.81 of 2.02).
func (s *ActStats) klRange() [2]float64 {
	levels := 256
	if s.pos.counts != nil && s.neg.counts != nil {
		levels = 128
	}
	lo, hi := s.Min, s.Max
	if s.pos.counts != nil {
		hi = math.Min(hi, float64(klThreshold(s.pos.counts, levels))*s.pos.width())
	}
	if s.neg.counts != nil {
		lo = math.Max(lo, -float64(klThreshold(s.neg.counts, levels))*s.neg.width())
	}
	return [2]float64{lo, hi}
}

// klThreshold returns the number of bins i of counts to keep: nb, the
// bins up to the last nonzero one, when nb <= levels; otherwise, for every
// i from levels to nb, the reference P is the first i bins with the counts
// beyond added to the last, the candidate Q the first i bins merged into
// levels groups (bin b in group b·levels/i) and spread evenly back over
// each group's nonzero bins, and the result is the i of least KL(P‖Q)
// (P and Q normalised), the largest on ties.
func klThreshold(counts []int64, levels int) int {
	nb := 0
	for k := len(counts) - 1; k >= 0; k-- {
		if counts[k] != 0 {
			nb = k + 1
			break
		}
	}
	if nb <= levels {
		return nb
	}
	h := make([]float64, nb)
	for b := range h {
		h[b] = float64(counts[b])
	}
	// beyond[i] is the count from bin i on.
	beyond := make([]float64, nb+1)
	for b := nb - 1; b >= 0; b-- {
		beyond[b] = beyond[b+1] + h[b]
	}
	total := beyond[0]
	best, bestI := math.Inf(1), nb
	q := make([]float64, nb)
	for i := levels; i <= nb; i++ {
		// Q: group sums over the nonzero bins, spread evenly.
		for g, b := 0, 0; g < levels; g++ {
			start := b
			sum, nz := 0.0, 0
			for ; b < i && b*levels/i == g; b++ {
				if h[b] != 0 {
					sum += h[b]
					nz++
				}
			}
			for k := start; k < b; k++ {
				q[k] = 0
				if h[k] != 0 {
					q[k] = sum / float64(nz)
				}
			}
		}
		qsum := total - beyond[i] // Q keeps the first i bins' counts
		kl := 0.0
		for b := 0; b < i; b++ {
			p := h[b]
			if b == i-1 {
				p += beyond[i]
			}
			if p == 0 {
				continue
			}
			if q[b] == 0 {
				kl = math.Inf(1)
				break
			}
			pn, qn := p/total, q[b]/qsum
			kl += pn * math.Log(pn/qn)
		}
		if kl <= best {
			best, bestI = kl, i
		}
	}
	return bestI
}

// DefaultCalib is the command line's activation calibration (--act-calib),
// chosen on TestActCalibEvidence (the README's table): over uniform W8A8
// and W4A8 (GPTQ with bias correction) on the three Fashion-MNIST
// fixtures, minmax had the best mean top-1 on the 10,000 test images,
// 91.442%, against mse 91.428, percentile 91.415 and kl 91.340. Library
// callers pass an ActCalib; its zero value is minmax.
const DefaultCalib = CalibMinMax
