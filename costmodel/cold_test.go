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

// coldTestProfile is testProfile with a cold model and a 1 MiB L2.
func coldTestProfile() *Profile {
	p := testProfile()
	p.CPU.L2Bytes = 1 << 20
	p.Cold = &ColdModel{NsPerWeightByte: 0.05, StreamNsPerWeightByte: 0.025, AddTableNs: 30000, Points: 5}
	return p
}

// TestColdProfileOptional: a profile without a cold section (every profile
// measured before it existed) loads with a nil Cold and predicts the hot
// figures; one with it round-trips; a cold section missing a field or with
// a negative one is refused naming the field.
func TestColdProfileOptional(t *testing.T) {
	old, err := testProfile().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(old, []byte("cold")) {
		t.Fatalf("a profile without a cold model writes a cold section:\n%s", old)
	}
	p, err := ReadProfile(bytes.NewReader(old), "old.yaml")
	if err != nil {
		t.Fatalf("old profile: %v", err)
	}
	if p.Cold != nil {
		t.Errorf("old profile: Cold = %+v; want nil", p.Cold)
	}
	big := []LayerShape{GemmLayer("a", "Gemm", 49, 4608, 512)}
	if f := ColdShare(p, big, nil, nil); f != (PassShare{}) {
		t.Errorf("old profile: ColdShare = %+v; want zero (no cold model)", f)
	}
	src, err := coldTestProfile().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ReadProfile(bytes.NewReader(src), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if q.Cold == nil || !reflect.DeepEqual(q.Cold, coldTestProfile().Cold) {
		t.Errorf("round trip: Cold = %+v; want %+v", q.Cold, coldTestProfile().Cold)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"missing", strings.Replace(string(src), "  add_table_ns: 30000\n", "", 1), "missing field cold.add_table_ns"},
		{"missing stream", strings.Replace(string(src), "  stream_ns_per_weight_byte: 0.025\n", "", 1), "missing field cold.stream_ns_per_weight_byte"},
		{"negative", strings.Replace(string(src), "  ns_per_weight_byte: 0.05\n  stream", "  ns_per_weight_byte: -0.05\n  stream", 1), "cold.ns_per_weight_byte is -0.05"},
	} {
		if _, err := ReadProfile(strings.NewReader(tc.yaml), "p.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v; want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestColdWeightBytes checks the bytes a layer reads once per call.
func TestColdWeightBytes(t *testing.T) {
	fc := GemmLayer("fc", "Gemm", 1, 2048, 1000)
	tests := []struct {
		name string
		s    LayerShape
		kb   int
		isa  string
		want float64
	}{
		{"panels, 8-bit int16 pairs", GemmLayer("a", "Gemm", 49, 4608, 512), 8, "avx2", 4608 * 512 * 2},
		{"panels, 8-bit VNNI", GemmLayer("a", "Gemm", 49, 4608, 512), 8, "avx512_vnni", 4608 * 512},
		{"panels, 4-bit", GemmLayer("a", "Gemm", 49, 4608, 512), 4, "avx2", 4608 * 512},
		{"padded K and N", GemmLayer("b", "Gemm", 49, 10, 20), 4, "avx2", 12 * 32},
		{"stream rows, packed", fc, 4, "avx2", 2048 * 1000 / 2},
	}
	for _, tc := range tests {
		if got := coldWeightBytes(tc.s, tc.kb, 1, tc.isa); got != tc.want {
			t.Errorf("%s: got %v bytes; want %v", tc.name, got, tc.want)
		}
	}
}

// TestPredictNetworkCold: a model whose weights exceed the L2 is predicted
// with the cold terms (per weight byte and per Add), exactly; one whose
// weights fit is predicted hot.
func TestPredictNetworkCold(t *testing.T) {
	p := coldTestProfile()
	big := []LayerShape{GemmLayer("a", "Gemm", 49, 4608, 512), GemmLayer("b", "Gemm", 49, 512, 512), GemmLayer("fc", "Gemm", 1, 2048, 1000)}
	small := []LayerShape{GemmLayer("c", "Gemm", 49, 256, 256), GemmLayer("d", "Gemm", 49, 256, 256), GemmLayer("e", "Gemm", 1, 256, 10)}
	ops := []OpShape{{Name: "add", Op: OpAdd, Elements: 49 * 512}}
	bits := []int{8, 4, 4}
	for _, tc := range []struct {
		name   string
		shapes []LayerShape
		cold   PassShare
		extra  float64 // ns
	}{
		// avx2 profile: 8-bit panels of int16 pairs.
		// The classifier streams: its packed 4-bit rows at the stream rate.
		{"big", big, PassShare{1, 1}, 0.05*(4608*512*2+512*512) + 0.025*2048*1000/2 + 30000},
		// 2 x 64 KiB of panels + one 64 KiB table < 1 MiB.
		{"small", small, PassShare{}, 0},
	} {
		if got := ColdShare(p, tc.shapes, bits, ops); got != tc.cold {
			t.Errorf("%s: ColdShare = %+v; want %+v", tc.name, got, tc.cold)
		}
		all, err := PredictNetwork(p, tc.shapes, bits, ops, 1)
		if err != nil {
			t.Fatal(err)
		}
		hot, err := PredictModel(p, tc.shapes, bits, 1)
		if err != nil {
			t.Fatal(err)
		}
		o, err := PredictOps(p, ops, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := float64(all - hot - o); math.Abs(got-tc.extra) > 2 {
			t.Errorf("%s: PredictNetwork - hot = %v ns; want %v", tc.name, got, tc.extra)
		}
		var sum time.Duration
		for i, s := range tc.shapes {
			d, err := PredictInPass(p, s, bits[i], 1, tc.cold)
			if err != nil {
				t.Fatal(err)
			}
			sum += d
		}
		d, err := PredictOpsInPass(p, ops, 1, tc.cold)
		if err != nil {
			t.Fatal(err)
		}
		if diff := (sum + d - all).Abs(); diff > 2 {
			t.Errorf("%s: PredictInPass + PredictOpsInPass = %v; PredictNetwork %v", tc.name, sum+d, all)
		}
	}
}

// TestColdSlowerThanHot: on a layer whose 2.3 MiB of int8 weights exceed
// the L2, a call after the caches were evicted (its activations read back)
// is slower than a hot one, so is a one-row stream call on 16 MiB of
// weights, and an engine Add with its table evicted is
// slower than a hot one: measureCold's figures are positive. (Timed, so
// skipped with -short.)
func TestColdSlowerThanHot(t *testing.T) {
	if testing.Short() {
		t.Skip("timed")
	}
	ctx := context.Background()
	mo, err := MeasureOptions{Repeats: 5, MinSample: time.Millisecond}.norm()
	if err != nil {
		t.Fatal(err)
	}
	unlock := lockThread(mo.Clock)
	defer unlock()
	rng := rand.New(rand.NewPCG(5, 6))
	r, err := newRunner(49, 4608, 512, 8, 1, rng)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := coldExtra(ctx, r.run, func() { touch(r.src); touch(r.out) }, mo)
	if err != nil {
		t.Fatal(err)
	}
	if extra <= 0 {
		t.Errorf("49x4608x512 GEMM: cold - hot = %v ns; want > 0", extra)
	}
	sr, err := newStreamRunner(8, 1, 4096, 4096, 1, rng)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := coldExtra(ctx, sr.run, func() { touch(sr.a); touch(sr.dst) }, mo)
	if err != nil {
		t.Fatal(err)
	}
	if stream <= 0 {
		t.Errorf("4096x4096 stream: cold - hot = %v ns; want > 0", stream)
	}
	add, err := coldAddExtra(ctx, mo, rng)
	if err != nil {
		t.Fatal(err)
	}
	if add <= 0 {
		t.Errorf("Add: cold - hot = %v ns; want > 0", add)
	}
	t.Logf("cold - hot: GEMM %.0f ns (%.3f ns per panel byte), stream %.0f ns (%.3f per byte), Add %.0f ns", extra, extra/(4608*512), stream, stream/(4096*4096), add)
}

// TestRefitPoolsKeepsOthers: RefitPools replaces the pool terms of the
// shipped profile (set to 999 here) with measured ones and keeps the other
// operations' terms and the other models. (Times the engine's pools, so
// skipped with -short.)
func TestRefitPoolsKeepsOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("timed")
	}
	p, err := ReadProfileFile("../profiles/amd-epyc-zen5.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.CheckISA(DetectCPU().KernelISA) != nil {
		t.Skip("the shipped profile describes other kernels")
	}
	p.Ops.PoolNHWCNsPerPixelTap, p.Ops.PoolNsPerTap, p.Ops.MaxPool2x2NsPerOutput = 999, 999, 999
	before := *p
	if err := RefitPools(context.Background(), p, ProfileOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"pool_nhwc_ns_per_pixel_tap": p.Ops.PoolNHWCNsPerPixelTap, "pool_ns_per_tap": p.Ops.PoolNsPerTap, "maxpool2x2_ns_per_output": p.Ops.MaxPool2x2NsPerOutput} {
		if v >= 999 {
			t.Errorf("ops.%s = %v after RefitPools; want a measured value", name, v)
		}
	}
	if p.Ops.AddNsPerElement != before.Ops.AddNsPerElement || p.Ops.QuantizeNsPerElement != before.Ops.QuantizeNsPerElement || p.Ops.CallNs != before.Ops.CallNs {
		t.Errorf("RefitPools changed other operations: %+v; before %+v", p.Ops, before.Ops)
	}
	if p.GEMM[0] != before.GEMM[0] || p.Cold != before.Cold {
		t.Errorf("RefitPools changed other models")
	}
}
