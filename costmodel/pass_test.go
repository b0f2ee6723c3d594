package costmodel

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// passTestProfile is coldTestProfile with a measured-looking pass curve:
// hot up to 8 MiB, then paying more and more of the cold terms.
func passTestProfile() *Profile {
	p := coldTestProfile()
	p.Cold.Pass = []PassPoint{{2 << 20, 0.02}, {8 << 20, 0.05}, {32 << 20, 0.3}, {64 << 20, 0.9}}
	return p
}

// TestColdShareCurve: with a pass curve, ColdShare is zero up to its
// largest hot point (8 MiB here, counting weights at their kernel widths
// and 64 KiB per Add table); beyond it tile-GEMM layers and Adds pay their
// cold terms in full and stream layers the curve's share, interpolated in
// log2 of the bytes and held beyond its end; without a curve, or with one
// whose hot points end below the L2, the step is at the L2 and everything
// pays in full. PredictNetwork adds those shares of the cold terms, as
// PredictInPass and PredictOpsInPass do layer by layer.
func TestColdShareCurve(t *testing.T) {
	// One-row stream layers: K x N x kb/8 bytes each.
	layer := func(mib float64) LayerShape {
		return GemmLayer("fc", "Gemm", 1, 1024, int(mib*1024))
	}
	conv := GemmLayer("conv", "Gemm", 49, 1024, 1024) // tile GEMM, 1 MiB of panels (VNNI)
	add := []OpShape{{Name: "a", Op: OpAdd, Elements: 1}}
	noCurve := coldTestProfile()
	coldFirst := passTestProfile()
	coldFirst.Cold.Pass[0].Fraction = 0.5
	// The curve between 8 MiB (0.05) and 32 MiB (0.3), and between 32 and
	// 64 MiB (0.9).
	at := func(mib float64) float64 {
		if mib <= 32 {
			return 0.05 + 0.25*math.Log2(mib/8)/2
		}
		return 0.3 + 0.6*math.Log2(mib/32)
	}
	for _, tc := range []struct {
		name   string
		p      *Profile
		shapes []LayerShape
		bits   []int
		ops    []OpShape
		want   PassShare
	}{
		{"4 MiB", passTestProfile(), []LayerShape{layer(4)}, []int{8}, nil, PassShare{}},
		{"8 MiB in two layers", passTestProfile(), []LayerShape{layer(4), layer(4)}, []int{8, 8}, nil, PassShare{}},
		{"8 MiB and an Add table", passTestProfile(), []LayerShape{layer(8)}, []int{8}, add, PassShare{1, at(8 + 1.0/16)}},
		{"16 MiB", passTestProfile(), []LayerShape{layer(16)}, []int{8}, nil, PassShare{1, at(16)}},
		{"16 MiB of 4-bit weights count 8", passTestProfile(), []LayerShape{layer(16)}, []int{4}, nil, PassShare{}},
		{"48 MiB with a GEMM layer", passTestProfile(), []LayerShape{layer(47), conv}, []int{8, 8}, add, PassShare{1, at(48 + 1.0/16)}},
		{"beyond the curve", passTestProfile(), []LayerShape{layer(256)}, []int{8}, nil, PassShare{1, 0.9}},
		{"no curve: step at the 1 MiB L2", noCurve, []LayerShape{layer(2)}, []int{8}, nil, PassShare{1, 1}},
		{"no curve: within the L2", noCurve, []LayerShape{layer(0.5)}, []int{8}, nil, PassShare{}},
		{"no hot point: step at the L2", coldFirst, []LayerShape{layer(2)}, []int{8}, nil, PassShare{1, 0.5}},
	} {
		p := tc.p
		p.CPU.KernelISA = "avx512_vnni"
		got := ColdShare(p, tc.shapes, tc.bits, tc.ops)
		if got.Panels != tc.want.Panels || math.Abs(got.Stream-tc.want.Stream) > 1e-12 {
			t.Errorf("%s: ColdShare = %+v; want %+v", tc.name, got, tc.want)
		}
		all, err := PredictNetwork(p, tc.shapes, tc.bits, tc.ops, 1)
		if err != nil {
			t.Fatal(err)
		}
		hot, err := PredictModel(p, tc.shapes, tc.bits, 1)
		if err != nil {
			t.Fatal(err)
		}
		o, err := PredictOps(p, tc.ops, 1)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for i, s := range tc.shapes {
			kb, _ := KernelBits(tc.bits[i])
			share, rate := got.Panels, p.Cold.NsPerWeightByte
			if s.M == 1 {
				share, rate = got.Stream, p.Cold.StreamNsPerWeightByte
			}
			want += share * rate * coldWeightBytes(s, kb, 1, p.CPU.KernelISA)
		}
		want += got.Panels * p.Cold.AddTableNs * float64(len(tc.ops))
		if extra := float64(all - hot - o); math.Abs(extra-want) > 2 {
			t.Errorf("%s: PredictNetwork - hot = %v ns; want %v", tc.name, extra, want)
		}
		var sum time.Duration
		for i, s := range tc.shapes {
			d, err := PredictInPass(p, s, tc.bits[i], 1, got)
			if err != nil {
				t.Fatal(err)
			}
			sum += d
		}
		d, err := PredictOpsInPass(p, tc.ops, 1, got)
		if err != nil {
			t.Fatal(err)
		}
		if diff := (sum + d - all).Abs(); diff > 2 {
			t.Errorf("%s: PredictInPass + PredictOpsInPass = %v; PredictNetwork %v", tc.name, sum+d, all)
		}
	}
}

// TestPassProfile: a profile with a pass curve round-trips; one whose
// curve is out of order or outside [0, 1] is refused naming the point.
func TestPassProfile(t *testing.T) {
	src, err := passTestProfile().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ReadProfile(bytes.NewReader(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q.Cold, passTestProfile().Cold) {
		t.Errorf("round trip: Cold = %+v; want %+v", q.Cold, passTestProfile().Cold)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"fraction above 1", "fraction: 0.05", "fraction: 1.25", "cold.pass[1].fraction is 1.25"},
		{"negative fraction", "fraction: 0.05", "fraction: -0.1", "cold.pass[1].fraction is -0.1"},
		{"bytes not increasing", "bytes: 8.388608e+06", "bytes: 1e+06", "cold.pass[1].bytes 1e+06 is not above"},
		{"zero bytes", "bytes: 2.097152e+06", "bytes: 0", "cold.pass[0].bytes is 0"},
	} {
		if !strings.Contains(string(src), tc.from) {
			t.Fatalf("%s: %q not in the profile:\n%s", tc.name, tc.from, src)
		}
		y := strings.Replace(string(src), tc.from, tc.to, 1)
		if _, err := ReadProfile(strings.NewReader(y), "p.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v; want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestMeasurePass: on this machine a pass over 1 MiB of weights (within
// any current core's L2) pays little of the cold cost, and one over
// 128 MiB (beyond any last-level cache share) enough not to count as
// hot. (Timed, so skipped with -short.)
func TestMeasurePass(t *testing.T) {
	if testing.Short() {
		t.Skip("timed")
	}
	mo, err := MeasureOptions{Repeats: 5, MinSample: time.Millisecond}.norm()
	if err != nil {
		t.Fatal(err)
	}
	unlock := lockThread(mo.Clock)
	defer unlock()
	pts, err := measurePass(context.Background(), mo, rand.New(rand.NewPCG(7, 8)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pass curve: %+v", pts)
	if err := validatePass(pts); err != nil {
		t.Fatal(err)
	}
	if f := pts[0].Fraction; f > 0.25 {
		t.Errorf("1 MiB pass: fraction %v; want at most 0.25 (weights in L2)", f)
	}
	if f := pts[len(pts)-1].Fraction; f <= passHotFraction {
		t.Errorf("128 MiB pass: fraction %v; want above passHotFraction %v (weights from memory; 0.39 to 0.84 in quiet runs)", f, passHotFraction)
	}
}
