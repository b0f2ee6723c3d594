package costmodel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// opsNet is a small ONNX graph built to time one kind of step of the
// integer engine: input [1, ch, side, side] -> the operation(s) -> a 1x1
// Conv to outCh channels (so the output is the int32 accumulators the
// engine dequantizes, as at a model's logits).
type opsNet struct {
	g    *onnx.Graph
	rng  *rand.Rand
	n    int
	side int
}

func newOpsNet(ch, side int, rng *rand.Rand) *opsNet {
	dims := []onnx.Dim{{Value: 1}, {Value: int64(ch)}, {Value: int64(side)}, {Value: int64(side)}}
	return &opsNet{g: &onnx.Graph{Name: "ops", Inputs: []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: dims}},
		Initializers: map[string]*tensor.Tensor{}, InitTypes: map[string]onnx.DataType{}}, rng: rng, side: side}
}

func (b *opsNet) node(op string, in []string, attrs ...onnx.Attribute) string {
	b.n++
	name := fmt.Sprintf("%s%d", op, b.n)
	m := map[string]onnx.Attribute{}
	for _, a := range attrs {
		m[a.Name] = a
	}
	b.g.Nodes = append(b.g.Nodes, onnx.Node{Name: name, OpType: op, Inputs: in, Outputs: []string{name + "_out"}, Attrs: m})
	return name + "_out"
}

func (b *opsNet) conv1x1(in string, cin, cout int) string {
	b.n++
	name := fmt.Sprintf("w%d", b.n)
	w := tensor.New(cout, cin, 1, 1)
	for i := range w.Data {
		w.Data[i] = 0.3 * b.rng.NormFloat64()
	}
	b.g.Initializers[name] = w
	b.g.InitTypes[name] = onnx.Float
	b.g.InitOrder = append(b.g.InitOrder, name)
	return b.node("Conv", []string{in, name})
}

// nchwView returns a Reshape of x to its own shape: a view, which keeps x
// channels-first (intengine layout.go) and reads the same codes.
func (b *opsNet) nchwView(ch int) string {
	b.n++
	name := fmt.Sprintf("shape%d", b.n)
	b.g.Initializers[name] = tensor.FromData([]float64{-1, float64(ch), float64(b.side), float64(b.side)}, 4)
	b.g.InitTypes[name] = onnx.Int64
	b.g.InitOrder = append(b.g.InitOrder, name)
	return b.node("Reshape", []string{"x", name})
}

// gemm adds a Gemm of the [1, in] value to out outputs (transB = 1).
func (b *opsNet) gemm(x string, in, out int) string {
	b.n++
	name := fmt.Sprintf("w%d", b.n)
	w := tensor.New(out, in)
	for i := range w.Data {
		w.Data[i] = 0.3 * b.rng.NormFloat64()
	}
	b.g.Initializers[name] = w
	b.g.InitTypes[name] = onnx.Float
	b.g.InitOrder = append(b.g.InitOrder, name)
	return b.node("Gemm", []string{x, name}, onnx.Attribute{Name: "transB", Type: onnx.AttrInt, I: 1})
}

func ints(name string, v ...int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

// compile builds the graph with output out and compiles it with ranges
// observed on x.
func (b *opsNet) compile(ctx context.Context, out string, x *tensor.Tensor) (*intengine.Model, error) {
	b.g.Outputs = []onnx.ValueInfo{{Name: out, ElemType: onnx.Float}}
	net, err := network.Build(&onnx.Model{IRVersion: 8, Opset: 13, Graph: b.g}, network.Options{})
	if err != nil {
		return nil, err
	}
	ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{x})
	if err != nil {
		return nil, err
	}
	return intengine.Compile(net, intengine.Config{Ranges: ranges})
}

// opsChannels is the channel count of the timed tensors, and opsSides the
// two plane sides (64 and 1024 values per channel), as between the layers
// of a small CNN.
const opsChannels = 16

var opsSides = [2]int{8, 32}

// opsRuns is the number of timed runs of each engine program per sample
// (Model.Time's median over them): the steps take 0.1 to 20 µs.
const opsRuns = 51

// opsCase is one engine program and how to read its timing: elems gives
// the per-element count of a step (or of the output dequantization, op
// "" below) at a plane side.
type opsCase struct {
	ch    int // channels of x; 0 means opsChannels
	name  string
	build func(b *opsNet) string
	op    string // the step's operator in intengine.Timing.Steps; "" is the dequantization after the last step
	elems func(side int) float64
}

// measureOps fits OpsModel on the integer engine's own steps
// (intengine.Model.Time, which times every step of the program it runs):
// small programs, each a quantized input, the operation and a 1x1 Conv,
// are compiled at two plane sizes (16 channels of 8x8 and 32x32); a step's slope between them is its
// per-element cost and the median intercept the per-operation constant.
// The output dequantization, which Run does after the last step, is the
// whole run's median less its steps', on a program ending in a Gemm (as
// classifiers do) with 1024 and 16384 outputs. The general pools are timed with
// 2x2 (stride 1) and 3x3 (stride 1, padding 1) windows to separate the
// per-output and per-tap costs. The engine times with the wall clock.
func measureOps(ctx context.Context, mo MeasureOptions, rng *rand.Rand) (OpsModel, error) {
	const ch = opsChannels
	plane := func(side int) float64 { return float64(ch * side * side) }
	// pool is a max pool on channels-first codes, poolNHWC one on
	// channels-last codes of c channels.
	pool := func(k, s, pad int64) func(b *opsNet) string {
		return func(b *opsNet) string {
			return b.conv1x1(b.node("MaxPool", []string{b.nchwView(ch)}, ints("kernel_shape", k, k), ints("strides", s, s), ints("pads", pad, pad, pad, pad)), ch, 4)
		}
	}
	poolNHWC := func(c int) func(b *opsNet) string {
		return func(b *opsNet) string {
			return b.conv1x1(b.node("MaxPool", []string{"x"}, ints("kernel_shape", 2, 2), ints("strides", 2, 2)), c, 4)
		}
	}
	quantize := func(b *opsNet) string { return b.conv1x1("x", ch, 4) }
	cases := []opsCase{
		{0, OpQuantize, quantize, "QuantizeLinear", plane},
		// Logits come from a Gemm: GlobalAveragePool, Flatten, then a
		// Gemm to as many outputs as the plane has values.
		{0, OpDequantize, func(b *opsNet) string {
			flat := b.node("Flatten", []string{b.node("GlobalAveragePool", []string{"x"})})
			return b.gemm(flat, ch, ch*b.side*b.side)
		}, "", plane},
		{0, "maxpool2x2", pool(2, 2, 0), "MaxPool", func(side int) float64 { return plane(side) / 4 }},
		{0, OpAdd, func(b *opsNet) string {
			return b.conv1x1(b.node("Add", []string{b.conv1x1("x", ch, ch), "x"}), ch, 4)
		}, "Add", plane},
		{0, OpClamp, func(b *opsNet) string { return b.conv1x1(b.node("Relu", []string{"x"}), ch, 4) }, "Relu", plane},
	}
	var m OpsModel
	var intercepts []float64
	for _, c := range cases {
		var ts, es [2]float64
		for i, side := range opsSides {
			t, err := timeOpsCase(ctx, c, side, mo, rng)
			if err != nil {
				return m, fmt.Errorf("costmodel: timing the engine's %s: %w", c.name, err)
			}
			ts[i], es[i] = t, c.elems(side)
		}
		slope := max(0, (ts[1]-ts[0])/(es[1]-es[0]))
		intercepts = append(intercepts, max(0, ts[0]-slope*es[0]))
		slope = roundSig(slope, 4)
		switch c.name {
		case OpQuantize:
			m.QuantizeNsPerElement = slope
		case OpDequantize:
			m.DequantizeNsPerElement = slope
		case "maxpool2x2":
			m.MaxPool2x2NsPerOutput = slope
		case OpAdd:
			m.AddNsPerElement = slope
		case OpClamp:
			m.ClampNsPerElement = slope
		}
	}
	// General pools: per output, with 2x2 (stride 1) and 3x3 (stride 1,
	// padding 1) windows over the large planes.
	side := opsSides[1]
	var perOut, taps [2]float64
	for i, w := range [2][3]int64{{2, 1, 0}, {3, 1, 1}} {
		c := opsCase{0, fmt.Sprintf("%dx%d max pool", w[0], w[0]), pool(w[0], w[1], w[2]), "MaxPool", nil}
		t, err := timeOpsCase(ctx, c, side, mo, rng)
		if err != nil {
			return m, fmt.Errorf("costmodel: timing the engine's pooling: %w", err)
		}
		outs, tapCount := poolTapCount(side, int(w[0]), int(w[1]), int(w[2]))
		perOut[i] = t / float64(ch*outs)
		taps[i] = float64(tapCount) / float64(outs)
	}
	tap := max(0, (perOut[1]-perOut[0])/(taps[1]-taps[0]))
	m.PoolNsPerTap = roundSig(tap, 4)
	m.PoolNsPerOutput = roundSig(max(0, perOut[0]-tap*taps[0]), 4)
	// Channels-last pools: 2x2 windows with stride 2 over 4, 24 and 64
	// channels of the large planes separate the per-tap call, the bytes
	// of the byte loop (4 and 24 channels) and those of the vector loop
	// (64 channels). The byte loop's branches depend on the data: on the
	// fixture LeNet's first pool (6 channels) the engine's step took
	// 7.3 µs on patterned and 12.9 µs on random inputs; these inputs are
	// random.
	var nt [3]float64
	chans := [3]int{4, 24, 64}
	for i, c := range chans {
		t, err := timeOpsCase(ctx, opsCase{c, "channels-last max pool", poolNHWC(c), "MaxPool", nil}, side, mo, rng)
		if err != nil {
			return m, fmt.Errorf("costmodel: timing the engine's channels-last pooling: %w", err)
		}
		nt[i] = t
	}
	pixTaps := float64(side * side) // (side/2)^2 outputs, 4 taps each
	tail := max(0, (nt[1]-nt[0])/(pixTaps*float64(chans[1]-chans[0])))
	call := max(0, nt[0]/pixTaps-tail*float64(chans[0]))
	m.PoolNHWCNsPerTailByte = roundSig(tail, 4)
	m.PoolNHWCNsPerPixelTap = roundSig(call, 4)
	m.PoolNHWCNsPerByteTap = roundSig(max(0, (nt[2]/pixTaps-call)/float64(chans[2])), 4)
	slices.Sort(intercepts)
	m.CallNs = roundSig(intercepts[len(intercepts)/2], 4)
	return m, nil
}

// timeOpsCase compiles case c at plane side side and returns the median
// time in nanoseconds of its step c.op (or of the dequantization), the
// median over mo.Repeats samples of Model.Time's median over opsRuns runs
// (Model.Time collects the heap first, as settleHeap does).
func timeOpsCase(ctx context.Context, c opsCase, side int, mo MeasureOptions, rng *rand.Rand) (float64, error) {
	ch := c.ch
	if ch == 0 {
		ch = opsChannels
	}
	b := newOpsNet(ch, side, rng)
	x := tensor.New(1, ch, side, side)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	model, err := b.compile(ctx, c.build(b), x)
	if err != nil {
		return 0, err
	}
	samples := make([]float64, 0, mo.Repeats)
	for r := 0; r < mo.Repeats; r++ {
		tm, err := model.Time(ctx, x, max(mo.Warmup, 1), opsRuns)
		if err != nil {
			return 0, err
		}
		var v float64
		if c.op == "" {
			v = float64(tm.Median)
			for _, s := range tm.Steps {
				v -= float64(s.Median)
			}
		} else {
			found := false
			for _, s := range tm.Steps {
				if s.Op == c.op {
					v, found = float64(s.Median), true
					break
				}
			}
			if !found {
				return 0, fmt.Errorf("the engine ran no %s step (steps %v)", c.op, tm.Steps)
			}
		}
		samples = append(samples, v)
	}
	slices.Sort(samples)
	return samples[len(samples)/2], nil
}

// poolTapCount returns the outputs per plane of a k x k pool with stride s
// and padding pad over a side x side plane, and their taps inside the
// plane in total.
func poolTapCount(side, k, s, pad int) (outs, taps int) {
	oh := (side+2*pad-k)/s + 1
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < oh; ox++ {
			for i := 0; i < k; i++ {
				for j := 0; j < k; j++ {
					y, x := oy*s-pad+i, ox*s-pad+j
					if y >= 0 && y < side && x >= 0 && x < side {
						taps++
					}
				}
			}
		}
	}
	return oh * oh, taps
}

// RefitPools measures again, on this CPU, the operations model of a
// measured profile p (measureOps, on p's clock and thread count) and
// replaces its pool terms only (maxpool2x2, pool and pool_nhwc), keeping
// every other model and the other operations' terms: for a profile
// measured before a change of the engine's pools (the channels-last 2x2
// MaxPool's fast path took LeNet's first pool from 13 to 2 µs, which the
// 03:50 profile still predicted at 4.8). p must describe this CPU's
// kernels.
func RefitPools(ctx context.Context, p *Profile, opt ProfileOptions) error {
	return refit(p, func(q *Profile, _ sweep, mo MeasureOptions) error {
		m, err := measureOps(ctx, mo, rand.New(rand.NewPCG(opt.Seed, 0x6f7073)))
		if err != nil {
			return err
		}
		q.Ops.MaxPool2x2NsPerOutput, q.Ops.PoolNsPerOutput, q.Ops.PoolNsPerTap = m.MaxPool2x2NsPerOutput, m.PoolNsPerOutput, m.PoolNsPerTap
		q.Ops.PoolNHWCNsPerPixelTap, q.Ops.PoolNHWCNsPerByteTap, q.Ops.PoolNHWCNsPerTailByte = m.PoolNHWCNsPerPixelTap, m.PoolNHWCNsPerByteTap, m.PoolNHWCNsPerTailByte
		return nil
	})
}
