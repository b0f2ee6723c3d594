package network

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// refTol bounds the difference between an op and its direct-loop
// reference: both sum the same O(100) products of O(1) values in another
// order, so they agree to a few ulps of the sum's magnitude (~1e-14).
const refTol = 1e-12

// Attribute constructors for the layer-op tests.
func laInts(v ...int64) onnx.Attribute { return onnx.Attribute{Type: onnx.AttrInts, Ints: v} }
func laInt(v int64) onnx.Attribute     { return onnx.Attribute{Type: onnx.AttrInt, I: v} }
func laFloat(v float32) onnx.Attribute { return onnx.Attribute{Type: onnx.AttrFloat, F: v} }
func laStr(v string) onnx.Attribute    { return onnx.Attribute{Type: onnx.AttrString, S: v} }
func laFloats(v ...float32) onnx.Attribute {
	return onnx.Attribute{Type: onnx.AttrFloats, Floats: v}
}

// buildLayer builds an op of type opType with nIn inputs named in0, in1...
// (empty names where omit says) and the given attributes.
func buildLayer(t *testing.T, opType string, nIn int, attrs map[string]onnx.Attribute, consts map[string]*tensor.Tensor, opset int64) Op {
	t.Helper()
	op, err := tryBuildLayer(opType, nIn, attrs, consts, opset)
	if err != nil {
		t.Fatalf("build %s: %v", opType, err)
	}
	return op
}

func tryBuildLayer(opType string, nIn int, attrs map[string]onnx.Attribute, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	n := &onnx.Node{Name: "n_" + strings.ToLower(opType), OpType: opType, Outputs: []string{"y"}, Attrs: attrs}
	for i := 0; i < nIn; i++ {
		n.Inputs = append(n.Inputs, fmt.Sprintf("in%d", i))
	}
	b, ok := builders[opType]
	if !ok {
		return nil, fmt.Errorf("no builder for %s", opType)
	}
	return b(n, consts, opset)
}

// maxRelDiff returns max |a-b| / max(1, |b|) over the elements.
func maxRelDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i])/math.Max(1, math.Abs(b[i])))
	}
	return d
}

// refConv is a direct-loop 2-D convolution with explicit pads
// (top, left, bottom, right); the output size is given.
func refConv(x, w, b *tensor.Tensor, group, sh, sw, dh, dw, pt, pl, oh, ow int) *tensor.Tensor {
	n, c, h, wd := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	m, cg, kh, kw := w.Shape[0], w.Shape[1], w.Shape[2], w.Shape[3]
	mg := m / group
	y := tensor.New(n, m, oh, ow)
	for in := 0; in < n; in++ {
		for om := 0; om < m; om++ {
			g := om / mg
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					s := 0.0
					if b != nil {
						s = b.Data[om]
					}
					for ci := 0; ci < cg; ci++ {
						for i := 0; i < kh; i++ {
							for j := 0; j < kw; j++ {
								iy, ix := oy*sh-pt+i*dh, ox*sw-pl+j*dw
								if iy < 0 || iy >= h || ix < 0 || ix >= wd {
									continue
								}
								s += x.Data[((in*c+g*cg+ci)*h+iy)*wd+ix] * w.Data[((om*cg+ci)*kh+i)*kw+j]
							}
						}
					}
					y.Data[((in*m+om)*oh+oy)*ow+ox] = s
				}
			}
		}
	}
	return y
}

// convCase is one Conv configuration with its resolved pads and output
// size for the reference.
type convCase struct {
	name   string
	x, w   []int
	bias   bool
	attrs  map[string]onnx.Attribute
	group  int
	s, d   [2]int
	p      [4]int // resolved pads (top, left, bottom, right) for the reference
	oh, ow int    // expected output size
}

func TestConv(t *testing.T) {
	tests := []convCase{
		{name: "basic", x: []int{2, 3, 5, 5}, w: []int{4, 3, 3, 3}, bias: true,
			group: 1, s: [2]int{1, 1}, d: [2]int{1, 1}, oh: 3, ow: 3},
		{name: "groups/stride/asymmetric pads", x: []int{2, 4, 5, 6}, w: []int{6, 2, 3, 3}, bias: true,
			attrs: map[string]onnx.Attribute{"group": laInt(2), "strides": laInts(2, 2), "pads": laInts(1, 0, 0, 2)},
			group: 2, s: [2]int{2, 2}, d: [2]int{1, 1}, p: [4]int{1, 0, 0, 2}, oh: 2, ow: 3},
		{name: "depthwise multiplier 2 dilation 2", x: []int{2, 3, 6, 5}, w: []int{6, 1, 3, 2}, bias: true,
			attrs: map[string]onnx.Attribute{"group": laInt(3), "dilations": laInts(2, 2), "pads": laInts(2, 1, 1, 1), "kernel_shape": laInts(3, 2)},
			group: 3, s: [2]int{1, 1}, d: [2]int{2, 2}, p: [4]int{2, 1, 1, 1}, oh: 5, ow: 5},
		{name: "depthwise 3x3 stride 2 pad 1 (MobileNet)", x: []int{2, 4, 7, 6}, w: []int{4, 1, 3, 3}, bias: true,
			attrs: map[string]onnx.Attribute{"group": laInt(4), "strides": laInts(2, 2), "pads": laInts(1, 1, 1, 1)},
			group: 4, s: [2]int{2, 2}, d: [2]int{1, 1}, p: [4]int{1, 1, 1, 1}, oh: 4, ow: 3},
		{name: "SAME_UPPER", x: []int{1, 2, 5, 6}, w: []int{3, 2, 2, 3}, bias: true,
			attrs: map[string]onnx.Attribute{"auto_pad": laStr("SAME_UPPER"), "strides": laInts(1, 2)},
			group: 1, s: [2]int{1, 2}, d: [2]int{1, 1}, p: [4]int{0, 0, 1, 1}, oh: 5, ow: 3},
		{name: "SAME_LOWER", x: []int{1, 2, 5, 6}, w: []int{3, 2, 2, 3}, bias: true,
			attrs: map[string]onnx.Attribute{"auto_pad": laStr("SAME_LOWER"), "strides": laInts(1, 2)},
			group: 1, s: [2]int{1, 2}, d: [2]int{1, 1}, p: [4]int{1, 1, 0, 0}, oh: 5, ow: 3},
		{name: "VALID stride 2", x: []int{2, 2, 7, 6}, w: []int{2, 2, 3, 3}, bias: true,
			attrs: map[string]onnx.Attribute{"auto_pad": laStr("VALID"), "strides": laInts(2, 2)},
			group: 1, s: [2]int{2, 2}, d: [2]int{1, 1}, oh: 3, ow: 2},
		{name: "1x1 no bias batch 1", x: []int{1, 3, 3, 4}, w: []int{5, 3, 1, 1},
			group: 1, s: [2]int{1, 1}, d: [2]int{1, 1}, oh: 3, ow: 4},
		{name: "stride 3 dilation 2 pads wider than stride", x: []int{2, 2, 8, 7}, w: []int{4, 1, 2, 3}, bias: true,
			attrs: map[string]onnx.Attribute{"group": laInt(2), "strides": laInts(3, 2), "dilations": laInts(2, 1), "pads": laInts(3, 2, 0, 1)},
			group: 2, s: [2]int{3, 2}, d: [2]int{2, 1}, p: [4]int{3, 2, 0, 1}, oh: 3, ow: 4},
	}
	// Every case runs with the default memory policy (columns kept, one
	// chunk), with columns recomputed, in chunks of one and of two
	// samples (tangents make K*N samples, so several chunks), and in
	// per-sample mode (the default for large layers).
	for _, policy := range []struct {
		name      string
		keep      bool
		samples   int // per chunk; 0: default
		perSample bool
	}{{"kept", true, 0, false}, {"kept, chunks of 1", true, 1, false}, {"recomputed, chunks of 1", false, 1, false}, {"recomputed, chunks of 2", false, 2, false}, {"per sample", true, 0, true}} {
		t.Run(policy.name, func(t *testing.T) {
			defer func(k, c, p int) { colsKeepLimit, colsChunk, perSampleMinP = k, c, p }(colsKeepLimit, colsChunk, perSampleMinP)
			if !policy.keep {
				colsKeepLimit = 0
			}
			if policy.perSample {
				perSampleMinP = 1
			}
			for _, tc := range tests {
				if policy.samples > 0 {
					colsChunk = policy.samples * tc.x[1] * tc.w[2] * tc.w[3] * tc.oh * tc.ow
				}
				t.Run(tc.name, func(t *testing.T) { testConvCase(t, tc) })
			}
		})
	}
}

func testConvCase(t *testing.T, tc convCase) {
	rng := rand.New(rand.NewPCG(1, 2))
	nIn := 2
	in := []*tensor.Tensor{randTensor(rng, tc.x...), randTensor(rng, tc.w...)}
	var b *tensor.Tensor
	if tc.bias {
		b = randTensor(rng, tc.w[0])
		in = append(in, b)
		nIn = 3
	}
	op := buildLayer(t, "Conv", nIn, tc.attrs, nil, 13)
	y, _, err := op.Forward(in)
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	want := refConv(in[0], in[1], b, tc.group, tc.s[0], tc.s[1], tc.d[0], tc.d[1], tc.p[0], tc.p[1], tc.oh, tc.ow)
	if !tensor.SameShape(y.Shape, want.Shape) {
		t.Fatalf("output shape: got %v; want %v", y.Shape, want.Shape)
	}
	if d := maxRelDiff(y.Data, want.Data); d > refTol {
		t.Errorf("Forward vs direct loops: max relative difference %g; want <= %g", d, refTol)
	}
	diff := []int{0, 1}
	if tc.bias {
		diff = append(diff, 2)
	}
	checkOp(t, op, in, diff)
}

func TestConvErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name   string
		attrs  map[string]onnx.Attribute
		consts map[string]*tensor.Tensor
		x, w   []int
		build  bool  // error expected from the builder
		want   error // sentinel wrapped, nil when none is required
	}{
		{name: "3-D kernel_shape", attrs: map[string]onnx.Attribute{"kernel_shape": laInts(3, 3, 3)}, build: true, want: ErrUnsupported},
		{name: "1-D strides with 2-D pads", attrs: map[string]onnx.Attribute{"strides": laInts(2), "pads": laInts(1, 1, 1, 1)}, build: true},
		{name: "3-D weight initializer", consts: map[string]*tensor.Tensor{"in1": tensor.New(2, 1, 3, 3, 3)}, build: true, want: ErrUnsupported},
		{name: "bad auto_pad", attrs: map[string]onnx.Attribute{"auto_pad": laStr("FULL")}, build: true},
		{name: "zero stride", attrs: map[string]onnx.Attribute{"strides": laInts(0, 1)}, build: true},
		{name: "strides of type float", attrs: map[string]onnx.Attribute{"strides": laFloats(1, 1)}, build: true},
		{name: "3-D convolution", x: []int{1, 2, 5, 5, 5}, w: []int{2, 2, 3, 3, 3}, want: ErrUnsupported},
		{name: "1-D attributes, 2-D input", attrs: map[string]onnx.Attribute{"strides": laInts(2)}, x: []int{1, 2, 5, 5}, w: []int{2, 2, 3, 3}, want: ErrShape},
		{name: "channel mismatch", x: []int{1, 3, 5, 5}, w: []int{2, 2, 3, 3}, want: ErrShape},
		{name: "kernel_shape disagrees", attrs: map[string]onnx.Attribute{"kernel_shape": laInts(2, 2)}, x: []int{1, 2, 5, 5}, w: []int{2, 2, 3, 3}, want: ErrShape},
		{name: "window larger than input", x: []int{1, 2, 2, 5}, w: []int{2, 2, 3, 3}, want: ErrShape},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, err := tryBuildLayer("Conv", 2, tc.attrs, tc.consts, 13)
			if !tc.build {
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				_, _, err = op.Forward([]*tensor.Tensor{randTensor(rng, tc.x...), randTensor(rng, tc.w...)})
			}
			if err == nil {
				t.Fatalf("got no error; want one")
			}
			if !strings.Contains(err.Error(), `"n_conv"`) {
				t.Errorf("error %q does not name the node", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
		})
	}
}

// TestConv1D checks a 1-D convolution against the 2-D one of height 1.
func TestConv1D(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	x, w, b := randTensor(rng, 2, 4, 9), randTensor(rng, 6, 2, 3), randTensor(rng, 6)
	op1 := buildLayer(t, "Conv", 3, map[string]onnx.Attribute{"group": laInt(2), "strides": laInts(2), "pads": laInts(2, 1), "dilations": laInts(2)}, nil, 13)
	op2 := buildLayer(t, "Conv", 3, map[string]onnx.Attribute{"group": laInt(2), "strides": laInts(1, 2), "pads": laInts(0, 2, 0, 1), "dilations": laInts(1, 2)}, nil, 13)
	in := []*tensor.Tensor{x, w, b}
	y1, _, err := op1.Forward(in)
	if err != nil {
		t.Fatalf("1-D Forward: %v", err)
	}
	y2, _, err := op2.Forward([]*tensor.Tensor{x.Reshape(2, 4, 1, 9), w.Reshape(6, 2, 1, 3), b})
	if err != nil {
		t.Fatalf("2-D Forward: %v", err)
	}
	if want := []int{2, 6, y2.Shape[3]}; !tensor.SameShape(y1.Shape, want) {
		t.Fatalf("shape: got %v; want %v", y1.Shape, want)
	}
	if d := maxRelDiff(y1.Data, y2.Data); d > refTol {
		t.Errorf("1-D vs 2-D of height 1: max relative difference %g; want <= %g", d, refTol)
	}
	checkOp(t, op1, in, []int{0, 1, 2})
}

// TestConvTangentBatched checks that K > 2 directions are laid out per
// direction: the batched tangent equals K separate single-direction ones.
func TestConvTangentBatched(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	op := buildLayer(t, "Conv", 3, map[string]onnx.Attribute{"group": laInt(2), "pads": laInts(1, 1, 1, 1)}, nil, 13)
	in := []*tensor.Tensor{randTensor(rng, 2, 4, 4, 4), randTensor(rng, 4, 2, 3, 3), randTensor(rng, 4)}
	out, st, err := op.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	const k = 3
	tin := []*tensor.Tensor{randTensor(rng, k, 2, 4, 4, 4), randTensor(rng, k, 4, 2, 3, 3), randTensor(rng, k, 4)}
	tg := randTensor(rng, append([]int{k}, out.Shape...)...)
	gout := randTensor(rng, out.Shape...)
	need := []bool{true, true, true}
	tout := op.Tangent(in, tin, out, st)
	_, tgin := op.BackwardTangent(in, tin, out, tout, st, gout, tg, need)
	for kk := 0; kk < k; kk++ {
		one := make([]*tensor.Tensor, 3)
		for i, x := range tin {
			sz := x.Size() / k
			one[i] = tensor.FromData(x.Data[kk*sz:(kk+1)*sz], append([]int{1}, x.Shape[1:]...)...)
		}
		sz := out.Size()
		tg1 := tensor.FromData(tg.Data[kk*sz:(kk+1)*sz], append([]int{1}, out.Shape...)...)
		t1 := op.Tangent(in, one, out, st)
		if d := maxRelDiff(tout.Data[kk*sz:(kk+1)*sz], t1.Data); d > refTol {
			t.Errorf("Tangent direction %d: batched vs single differ by %g; want <= %g", kk, d, refTol)
		}
		_, tg1in := op.BackwardTangent(in, one, out, t1, st, gout, tg1, need)
		for i := range tgin {
			m := in[i].Size()
			if d := maxRelDiff(tgin[i].Data[kk*m:(kk+1)*m], tg1in[i].Data); d > refTol {
				t.Errorf("BackwardTangent input %d direction %d: batched vs single differ by %g; want <= %g", i, kk, d, refTol)
			}
		}
	}
}

// BenchmarkConvForwardBackward times Forward plus Backward (dX and dW) at
// a LeNet-like and a VGG-like shape; GFLOPS counts 3 products of
// 2*N*M*OH*OW*Cg*kh*kw flops each.
func BenchmarkConvForwardBackward(b *testing.B) {
	for _, bc := range []struct {
		name string
		x, w []int
		pad  int64
	}{
		{"LeNet_256x6x14x14_16x5x5", []int{256, 6, 14, 14}, []int{16, 6, 5, 5}, 0},
		{"VGG_64x64x32x32_64x3x3", []int{64, 64, 32, 32}, []int{64, 64, 3, 3}, 1},
	} {
		b.Run(bc.name+"_"+BLASName(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			op, err := tryBuildLayer("Conv", 3, map[string]onnx.Attribute{"pads": laInts(bc.pad, bc.pad, bc.pad, bc.pad)}, nil, 13)
			if err != nil {
				b.Fatal(err)
			}
			in := []*tensor.Tensor{randTensor(rng, bc.x...), randTensor(rng, bc.w...), randTensor(rng, bc.w[0])}
			out, _, err := op.Forward(in)
			if err != nil {
				b.Fatal(err)
			}
			gout := randTensor(rng, out.Shape...)
			need := []bool{true, true, true}
			flops := 3 * 2 * float64(out.Size()) * float64(bc.w[1]*bc.w[2]*bc.w[3])
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				y, st, _ := op.Forward(in)
				op.Backward(in, y, st, gout, need)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}

// BenchmarkConvHVP times one Tangent plus BackwardTangent (the conv part
// of a Hessian-vector product) with K=4 directions on X and W, at the
// LeNet-like shape, after a Forward outside the timer.
func BenchmarkConvHVP(b *testing.B) {
	const k = 4
	rng := rand.New(rand.NewPCG(1, 1))
	op, err := tryBuildLayer("Conv", 3, nil, nil, 13)
	if err != nil {
		b.Fatal(err)
	}
	in := []*tensor.Tensor{randTensor(rng, 256, 6, 14, 14), randTensor(rng, 16, 6, 5, 5), randTensor(rng, 16)}
	out, st, err := op.Forward(in)
	if err != nil {
		b.Fatal(err)
	}
	tin := []*tensor.Tensor{randTensor(rng, append([]int{k}, in[0].Shape...)...), randTensor(rng, append([]int{k}, in[1].Shape...)...), nil}
	gout, tg := randTensor(rng, out.Shape...), randTensor(rng, append([]int{k}, out.Shape...)...)
	need := []bool{true, true, true}
	b.Run(BLASName(), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			tout := op.Tangent(in, tin, out, st)
			op.BackwardTangent(in, tin, out, tout, st, gout, tg, need)
		}
	})
}
