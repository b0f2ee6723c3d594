package network

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"mpsearch/dataset"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// sameBits reports the first index where got and want differ in any bit
// (NaNs with the same payload compare equal), or -1.
func sameBits(got, want *tensor.Tensor) int {
	for i := range want.Data {
		if math.Float64bits(got.Data[i]) != math.Float64bits(want.Data[i]) {
			return i
		}
	}
	return -1
}

// checkInferEqualsForward runs Forward and Infer (with and without a hook
// that rewrites inputs) on x and requires bit-identical outputs.
func checkInferEqualsForward(t *testing.T, name string, net *Network, x *tensor.Tensor) {
	t.Helper()
	ctx := context.Background()
	// A hook that changes every differentiable input, so that Infer must
	// call it exactly where ForwardHook does to agree.
	hook := func(node string, j int, v *tensor.Tensor) *tensor.Tensor {
		out := v.Clone()
		for i := range out.Data {
			out.Data[i] = math.Round(out.Data[i]*64) / 64
		}
		return out
	}
	// The same replacements written into memory the pass recycles.
	allocHook := func(node string, j int, v *tensor.Tensor, alloc func(n int) []float64) *tensor.Tensor {
		out := tensor.FromData(alloc(len(v.Data)), v.Shape...)
		for i, y := range v.Data {
			out.Data[i] = math.Round(y*64) / 64
		}
		return out
	}
	p, err := net.ForwardHook(ctx, x, hook)
	if err != nil {
		t.Fatalf("%s: Forward: %v", name, err)
	}
	got, err := net.InferAllocHook(ctx, x, allocHook)
	if err != nil {
		t.Fatalf("%s: InferAllocHook: %v", name, err)
	}
	if want := p.Output(); !tensor.SameShape(got.Shape, want.Shape) {
		t.Fatalf("%s: InferAllocHook output shape %v; want Forward's %v", name, got.Shape, want.Shape)
	} else if i := sameBits(got, want); i >= 0 {
		t.Errorf("%s: InferAllocHook output[%d] = %v; want ForwardHook's %v bit for bit", name, i, got.Data[i], want.Data[i])
	}
	for _, h := range []Hook{nil, hook} {
		p, err := net.ForwardHook(ctx, x, h)
		if err != nil {
			t.Fatalf("%s: Forward: %v", name, err)
		}
		got, err := net.InferHook(ctx, x, h)
		if err != nil {
			t.Fatalf("%s: Infer: %v", name, err)
		}
		want := p.Output()
		if !tensor.SameShape(got.Shape, want.Shape) {
			t.Fatalf("%s (hook %v): Infer output shape %v; want Forward's %v", name, h != nil, got.Shape, want.Shape)
		}
		if i := sameBits(got, want); i >= 0 {
			t.Errorf("%s (hook %v): Infer output[%d] = %v; want Forward's %v bit for bit", name, h != nil, i, got.Data[i], want.Data[i])
		}
	}
}

func TestInferEqualsForward(t *testing.T) {
	lenet := loadLeNet(t)
	ds, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInferEqualsForward(t, "lenet", lenet, ds.X)

	rng := rand.New(rand.NewPCG(11, 12))
	for _, fold := range []bool{false, true} {
		net, err := Build(mixedModel(rng), Options{NoFold: !fold})
		if err != nil {
			t.Fatal(err)
		}
		checkInferEqualsForward(t, fmt.Sprintf("mixed (fold %v)", fold), net, randTensor(rng, 3, 2, 6, 6))
	}
	net, err := Build(modernModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkInferEqualsForward(t, "modern", net, randTensor(rng, 2, 2, 6, 6))
	// Split (two outputs), batch-dependent deferred reshapes and Expand.
	net, err = Build(batchModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		checkInferEqualsForward(t, fmt.Sprintf("batch-shapes N=%d", n), net, randTensor(rng, n, 4, 3))
	}
}

// chainModel is x[N,4] through depth Tanh nodes, then a Split into two
// outputs of which only the first is read (the second is never consumed
// and must be released at once), then a residual Add of the Split's first
// output and the last Tanh.
func chainModel(depth int) *onnx.Model {
	var nodes []onnx.Node
	prev := "x"
	for i := range depth {
		out := fmt.Sprintf("t%d", i)
		nodes = append(nodes, mkNode(out, "Tanh", []string{prev}, []string{out}))
		prev = out
	}
	nodes = append(nodes,
		mkNode("split", "Split", []string{prev}, []string{"a", "b"}, aInt("axis", 1)),
		mkNode("pad", "Concat", []string{"a", "a"}, []string{"aa"}, aInt("axis", 1)),
		mkNode("res", "Add", []string{prev, "aa"}, []string{"z"}),
	)
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:         "chain",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 4}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: map[string]*tensor.Tensor{},
		InitTypes:    map[string]onnx.DataType{},
	}}
}

// TestInferLiveValues checks that an inference pass holds a bounded number
// of values whatever the depth, where Forward holds all of them. The
// bounds are counted by hand: in the chain, Tanh i holds its input and its
// output (2); Split holds t_last, a and b (3); Concat holds t_last, a, aa
// (3, b is gone); Add holds t_last, aa, z (3). In mixedModel (folded), the
// residual Add is reached with m1, c2 (Conv) and l2 (LeakyRelu) held
// (3), and Concat, Mul (swish) hold three values each as well.
func TestInferLiveValues(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(13, 14))
	for _, depth := range []int{3, 40} {
		net, err := Build(chainModel(depth), Options{})
		if err != nil {
			t.Fatal(err)
		}
		x := randTensor(rng, 2, 4)
		checkInferEqualsForward(t, fmt.Sprintf("chain %d", depth), net, x)
		var st inferStats
		if _, err := net.infer(ctx, []*tensor.Tensor{x}, nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.peakLive != 3 || st.endLive != 1 {
			t.Errorf("chain of %d: peak %d values held, %d at the end; want 3 and 1 (Forward holds %d)", depth, st.peakLive, st.endLive, depth+4)
		}
	}
	net, err := Build(mixedModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var st inferStats
	if _, err := net.infer(ctx, []*tensor.Tensor{randTensor(rng, 2, 2, 6, 6)}, nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.peakLive != 3 || st.endLive != 1 {
		t.Errorf("mixed model: peak %d values held, %d at the end; want 3 and 1 (Forward holds %d)", st.peakLive, st.endLive, net.NodeCount())
	}
}

// TestInferCancel checks that a cancelled context stops Infer before any
// node runs.
func TestInferCancel(t *testing.T) {
	net := loadLeNet(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := net.Infer(ctx, tensor.New(1, 1, 28, 28)); !errors.Is(err, context.Canceled) {
		t.Errorf("Infer on a cancelled context: got %v; want context.Canceled", err)
	}
}

// TestInferBatch checks the activation estimate on the fixture LeNet by
// hand: its widest layer value is conv1's output, 6×28×28 = 4704 values,
// so a sample takes 3×8×4704 = 112896 bytes, and 1 MiB holds 9 samples.
func TestInferBatch(t *testing.T) {
	net := loadLeNet(t)
	if got, want := net.ActivationBytesPerSample(), int64(3*8*6*28*28); got != want {
		t.Errorf("ActivationBytesPerSample: got %d; want %d", got, want)
	}
	for _, c := range []struct {
		budget      int64
		limit, want int
	}{
		{1 << 20, 256, 9},
		{1 << 20, 4, 4},     // the limit caps it
		{1000, 256, 1},      // at least one sample
		{1 << 30, 256, 256}, // 9510 fit; capped
	} {
		if got := net.InferBatch(c.budget, c.limit); got != c.want {
			t.Errorf("InferBatch(%d, %d): got %d; want %d", c.budget, c.limit, got, c.want)
		}
	}
}

// aliasModel makes Infer's memory reuse meet views: f is a Flatten view of
// the Conv output c, and the Relu reading f is f's last consumer while c
// is still needed by the second Conv; writing the Relu over f would
// corrupt c. The Sigmoid and the final Add may run over their inputs, and
// the third Conv's output may reuse c's memory, dead by then.
func aliasModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{"w1": randTensor(rng, 2, 2, 3, 3), "w2": randTensor(rng, 2, 2, 3, 3), "shape": tensor.FromData([]float64{-1, 2, 6, 6}, 4)}
	pads := aInts("pads", 1, 1, 1, 1)
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    "alias",
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: 6}, {Value: 6}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			mkNode("c1", "Conv", []string{"x", "w1"}, []string{"c"}, pads),
			mkNode("flat", "Flatten", []string{"c"}, []string{"f"}),
			mkNode("relu", "Relu", []string{"f"}, []string{"r"}),
			mkNode("c2", "Conv", []string{"c", "w2"}, []string{"c2"}, pads),
			mkNode("back", "Reshape", []string{"r", "shape"}, []string{"rr"}),
			mkNode("sig", "Sigmoid", []string{"c2"}, []string{"s"}),
			mkNode("c3", "Conv", []string{"s", "w2"}, []string{"c3"}, pads),
			mkNode("add", "Add", []string{"c3", "rr"}, []string{"z"}),
		},
		Initializers: inits,
		InitOrder:    []string{"w1", "w2", "shape"},
		InitTypes:    map[string]onnx.DataType{"w1": onnx.Float, "w2": onnx.Float, "shape": onnx.Int64},
	}}
}

// TestInferReusesMemorySafely checks that Infer runs nodes in place and
// reuses memory where it may (counts) and that its output still equals
// Forward's bit for bit where views share memory (aliasModel).
func TestInferReusesMemorySafely(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	net, err := Build(aliasModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(rng, 3, 2, 6, 6)
	checkInferEqualsForward(t, "alias", net, x)
	var st inferStats
	if _, err := net.infer(context.Background(), []*tensor.Tensor{x}, nil, &st); err != nil {
		t.Fatal(err)
	}
	// Sigmoid over c2 and Add over s or rr run in place; the Relu must not
	// (f shares c's memory).
	if st.inPlace != 2 {
		t.Errorf("nodes run in place: got %d; want 2 (Sigmoid, Add; never the Relu over a view of a live value)", st.inPlace)
	}
	if st.reused < 1 {
		t.Errorf("Conv outputs in recycled memory: got %d; want >= 1", st.reused)
	}
}

// TestPassStopsWhenCancelled checks that the passes run on a Forward pass
// (HVP, Tangents) stop with the context's error once it is done, so that
// an interrupt does not wait for a whole backward pass.
func TestPassStopsWhenCancelled(t *testing.T) {
	net := loadLeNet(t)
	ctx, cancel := context.WithCancel(context.Background())
	x := tensor.New(2, 1, 28, 28)
	p, err := net.Forward(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	dirs := make([]*tensor.Tensor, len(net.Params()))
	for i, q := range net.Params() {
		dirs[i] = tensor.New(append([]int{1}, q.Value.Shape...)...)
	}
	if _, _, err := p.HVP(CrossEntropy{Labels: []int{0, 1}}, dirs, 1); err != nil {
		t.Fatalf("HVP before cancel: %v", err)
	}
	cancel()
	if _, _, err := p.HVP(CrossEntropy{Labels: []int{0, 1}}, dirs, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("HVP after cancel: got %v; want context.Canceled", err)
	}
	if _, err := p.Tangents(dirs, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Tangents after cancel: got %v; want context.Canceled", err)
	}
}

// residualModel is x → Conv → a → Conv → b, z = a + b: a is read again
// after the second Conv, so a hook on that Conv's input must not write
// over a (and may over x at the first Conv, where x is the model input:
// never).
func residualModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{"w1": randTensor(rng, 2, 2, 3, 3), "w2": randTensor(rng, 2, 2, 3, 3), "w3": randTensor(rng, 2, 2, 1, 1)}
	pads := aInts("pads", 1, 1, 1, 1)
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    "residual",
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: 5}, {Value: 5}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			mkNode("c1", "Conv", []string{"x", "w1"}, []string{"a"}, pads),
			mkNode("c2", "Conv", []string{"a", "w2"}, []string{"b"}, pads),
			mkNode("add", "Add", []string{"a", "b"}, []string{"s"}),
			mkNode("c3", "Conv", []string{"s", "w3"}, []string{"z"}),
		},
		Initializers: inits,
		InitOrder:    []string{"w1", "w2", "w3"},
		InitTypes:    map[string]onnx.DataType{"w1": onnx.Float, "w2": onnx.Float, "w3": onnx.Float},
	}}
}

// TestInferAllocHookKeepsLiveInputs: InferAllocHook's hook writes over a
// layer input only where that value dies (s at c3), never over one read
// later (a at c2) nor over the model input; the output equals
// ForwardHook's bit for bit and the caller's x is unchanged.
func TestInferAllocHookKeepsLiveInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	net, err := Build(residualModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(rng, 2, 2, 5, 5)
	x0 := x.Clone()
	checkInferEqualsForward(t, "residual", net, x)
	if i := sameBits(x, x0); i >= 0 {
		t.Errorf("model input[%d] changed by InferAllocHook: %v; want %v", i, x.Data[i], x0.Data[i])
	}
	overwrote := map[string]bool{}
	hook := func(node string, j int, v *tensor.Tensor, alloc func(n int) []float64) *tensor.Tensor {
		if j != 0 {
			return v
		}
		d := alloc(len(v.Data))
		overwrote[node] = &d[0] == &v.Data[0]
		out := tensor.FromData(d, v.Shape...)
		for i, y := range v.Data {
			out.Data[i] = math.Round(y*8) / 8
		}
		return out
	}
	if _, err := net.InferAllocHook(context.Background(), x, hook); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"c1": false, "c2": false, "add": false, "c3": true}
	for node, w := range want {
		if overwrote[node] != w {
			t.Errorf("hook on %s's first input given that input's own memory: %v; want %v", node, overwrote[node], w)
		}
	}
}

// TestInferPoisonedArena runs Infer with an arena whose take fills memory
// with NaN (poisonTake), twice per model so that the second pass takes the
// first's arrays (keepArenas): an op marked fillOp whose inferAlloc reads
// an output value before writing it gives NaN, not Forward's output bit for
// bit. The models are the test models (depthwise, grouped, pointwise and
// 3×3 convolutions with and without bias, under each convolution policy:
// chunks of samples, one sample per product; MatMul at either precision;
// binary ops on a hook's replacements, which they cannot overwrite) and
// every fixture model of testdata/ that Forward runs.
func TestInferPoisonedArena(t *testing.T) {
	defer func(p, k bool) { poisonTake, keepArenas = p, k }(poisonTake, keepArenas)
	poisonTake, keepArenas = true, true
	defer func(p int) { perSampleMinP = p }(perSampleMinP)
	ds, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, minP := range []int{perSampleMinP, 1} {
		perSampleMinP = minP
		rng := rand.New(rand.NewPCG(17, 18))
		checkInferEqualsForward(t, "lenet", loadLeNet(t), ds.X)
		for _, tc := range []struct {
			name  string
			m     *onnx.Model
			shape []int
		}{
			{"mixed", mixedModel(rng), []int{3, 2, 6, 6}},
			{"modern", modernModel(rng), []int{2, 2, 6, 6}},
			{"residual", residualModel(rng), []int{2, 2, 5, 5}},
			{"alias", aliasModel(rng), []int{3, 2, 6, 6}},
			{"batch-shapes", batchModel(rng), []int{3, 4, 3}},
		} {
			for _, fold := range []bool{false, true} {
				for _, prec := range []Precision{F64, F32} {
					net, err := Build(tc.m, Options{NoFold: !fold, Precision: prec})
					if err != nil {
						t.Fatal(err)
					}
					name := fmt.Sprintf("%s (fold %v, %v, perSampleMinP %d)", tc.name, fold, prec, minP)
					checkInferEqualsForward(t, name, net, randTensor(rng, tc.shape...))
				}
			}
		}
	}
	dirs, err := filepath.Glob("testdata/onnx-*/test_*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no fixture models found: %v", err)
	}
	ran := 0
	for _, dir := range dirs {
		if checkInferFixture(t, dir) {
			ran++
		}
	}
	if ran < len(dirs)/2 {
		t.Errorf("fixture models run: got %d of %d; want at least half", ran, len(dirs))
	}
}

// checkInferFixture runs a fixture model (testdata/onnx-*) through Forward
// and twice through Infer and requires Infer's output to equal Forward's bit
// for bit (or NaN where Forward's is). It reports false when the model does
// not build or Forward fails (unsupported cases).
func checkInferFixture(t *testing.T, dir string) bool {
	t.Helper()
	m, err := onnx.Load(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	net, err := Build(m, Options{NoFold: true})
	if err != nil {
		return false
	}
	var ins []*tensor.Tensor
	for i := 0; ; i++ {
		x, _, err := onnx.ReadTensor(filepath.Join(dir, "test_data_set_0", fmt.Sprintf("input_%d.pb", i)))
		if err != nil {
			break
		}
		ins = append(ins, x)
	}
	p, err := net.ForwardAll(context.Background(), ins, nil)
	if err != nil {
		return false
	}
	want := p.Output()
	for pass := range 2 {
		got, err := net.InferAll(context.Background(), ins)
		if err != nil {
			t.Errorf("%s: Infer pass %d: %v", dir, pass, err)
			return true
		}
		if got.Size() != want.Size() {
			t.Errorf("%s: Infer output shape %v; want Forward's %v", dir, got.Shape, want.Shape)
			return true
		}
		for i, w := range want.Data {
			if g := got.Data[i]; math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("%s: Infer pass %d output[%d] = %v; want Forward's %v bit for bit", dir, pass, i, g, w)
				return true
			}
		}
	}
	return true
}

// siluModel is three SiLUs (Sigmoid, then a Mul of its input and output)
// on x[N,3,23,23], 3174 values per sample (more than one 256-value block,
// not a multiple): over the model input (which must not be overwritten),
// over a Conv output that dies at the Mul (written over), and over m1,
// read again by the final Add (not overwritten); the Mul's operands in
// both orders.
func siluModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{"w": randTensor(rng, 3, 3, 3, 3), "b": randTensor(rng, 3)}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:    "silu",
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 3}, {Value: 23}, {Value: 23}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			mkNode("s0", "Sigmoid", []string{"x"}, []string{"s0"}),
			mkNode("m0", "Mul", []string{"x", "s0"}, []string{"a"}),
			mkNode("conv", "Conv", []string{"a", "w", "b"}, []string{"c"}, aInts("pads", 1, 1, 1, 1)),
			mkNode("s1", "Sigmoid", []string{"c"}, []string{"s1"}),
			mkNode("m1", "Mul", []string{"s1", "c"}, []string{"m1"}),
			mkNode("s2", "Sigmoid", []string{"m1"}, []string{"s2"}),
			mkNode("m2", "Mul", []string{"m1", "s2"}, []string{"m2"}),
			mkNode("add", "Add", []string{"m1", "m2"}, []string{"z"}),
		},
		Initializers: inits,
		InitOrder:    []string{"w", "b"},
		InitTypes:    map[string]onnx.DataType{"w": onnx.Float, "b": onnx.Float},
	}}
}

// TestInferSiLU checks that Infer runs the SiLUs of siluModel as one loop
// each (3 fused) and that its output equals Forward's bit for bit, with
// the vector Sigmoid and the scalar one, with signed zeros, infinities and
// NaN among the inputs, and that the model input is left unchanged.
func TestInferSiLU(t *testing.T) {
	defer func(v, p bool) { vecExp, poisonTake = v, p }(vecExp, poisonTake)
	rng := rand.New(rand.NewPCG(19, 20))
	net, err := Build(siluModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := randTensor(rng, 2, 3, 23, 23)
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), 40, -40, 1e-310}
	for i := range x.Data {
		if rng.IntN(20) == 0 {
			x.Data[i] = special[rng.IntN(len(special))]
		}
	}
	x0 := x.Clone()
	for _, vec := range []bool{false, true} {
		vecExp, poisonTake = vec, true
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		var st inferStats
		got, err := net.infer(context.Background(), []*tensor.Tensor{x}, nil, &st)
		if err != nil {
			t.Fatal(err)
		}
		if st.fused != 3 {
			t.Errorf("vecExp %v: SiLUs run as one loop: got %d; want 3", vec, st.fused)
		}
		if i := sameBitsOrNaN(got, p.Output()); i >= 0 {
			t.Errorf("vecExp %v: Infer output[%d] = %v; want Forward's %v bit for bit", vec, i, got.Data[i], p.Output().Data[i])
		}
		if i := sameBits(x, x0); i >= 0 {
			t.Errorf("vecExp %v: model input[%d] changed by Infer: %v; want %v", vec, i, x.Data[i], x0.Data[i])
		}
	}
}
