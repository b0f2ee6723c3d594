package network

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// dynamicHWModel is x[N,2,h,w] -> Conv(3x3, pad 1, 3 channels) -> Relu ->
// Reshape to [N, 3, h*w], with the target computed from Shape (batch from
// Gather(0), h*w from Gather(2)*Gather(3)) as exporters write it.
func dynamicHWModel(rng *rand.Rand) *onnx.Model {
	ints64 := map[string]onnx.DataType{}
	inits := map[string]*tensor.Tensor{
		"w": randTensor(rng, 3, 2, 3, 3), "b": randTensor(rng, 3),
		"i0": tensor.FromData([]float64{0}), "i2": tensor.FromData([]float64{2}), "i3": tensor.FromData([]float64{3}),
		"c3": tensor.FromData([]float64{3}, 1), "ax0": tensor.FromData([]float64{0}, 1),
	}
	for _, k := range []string{"i0", "i2", "i3", "c3", "ax0"} {
		ints64[k] = onnx.Int64
	}
	ints64["w"], ints64["b"] = onnx.Float, onnx.Float
	nodes := []onnx.Node{
		mkNode("conv", "Conv", []string{"x", "w", "b"}, []string{"c"}, aInts("pads", 1, 1, 1, 1), aInts("kernel_shape", 3, 3)),
		mkNode("relu", "Relu", []string{"c"}, []string{"r"}),
		mkNode("shape", "Shape", []string{"r"}, []string{"s"}),
		mkNode("g0", "Gather", []string{"s", "i0"}, []string{"n"}),
		mkNode("g2", "Gather", []string{"s", "i2"}, []string{"h"}),
		mkNode("g3", "Gather", []string{"s", "i3"}, []string{"wd"}),
		mkNode("hw", "Mul", []string{"h", "wd"}, []string{"hw"}),
		mkNode("u0", "Unsqueeze", []string{"n", "ax0"}, []string{"n1"}),
		mkNode("u1", "Unsqueeze", []string{"hw", "ax0"}, []string{"hw1"}),
		mkNode("cat", "Concat", []string{"n1", "c3", "hw1"}, []string{"target"}, aInt("axis", 0)),
		mkNode("reshape", "Reshape", []string{"r", "target"}, []string{"y"}),
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:         "dynamic-hw",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: -1, Param: "height"}, {Value: -1, Param: "width"}}}},
		Outputs:      []onnx.ValueInfo{{Name: "y", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    ints64,
		InitOrder:    []string{"w", "b", "i0", "i2", "i3", "c3", "ax0"},
	}}
}

// TestInputShapeErrors checks the errors of unresolved and contradicting
// input shapes.
func TestInputShapeErrors(t *testing.T) {
	m := dynamicHWModel(rand.New(rand.NewPCG(1, 1)))
	_, err := Build(m, Options{})
	if err == nil || !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), "--input-shape x=1x2x<height>x<width>") {
		t.Errorf("no shape: got %v; want an error naming x and --input-shape x=1x2x<height>x<width>", err)
	}
	_, err = Build(m, Options{InputShapes: map[string][]int{"x": {1, 3, 8, 8}}})
	if !errors.Is(err, ErrShape) || !strings.Contains(err.Error(), "[1 3 8 8]") || !strings.Contains(err.Error(), "[N,2,height,width]") {
		t.Errorf("contradicting shape: got %v; want ErrShape naming [1 3 8 8] and [N,2,height,width]", err)
	}
	_, err = Build(m, Options{InputShapes: map[string][]int{"x": {1, 2, 8}}})
	if !errors.Is(err, ErrShape) {
		t.Errorf("wrong rank: got %v; want ErrShape", err)
	}
}

// TestDynamicHW builds the dynamic model at two sizes and checks the output
// shape and that the Reshape keeps the convolution's values in order.
func TestDynamicHW(t *testing.T) {
	for _, hw := range [][2]int{{5, 7}, {8, 6}} {
		m := dynamicHWModel(rand.New(rand.NewPCG(2, 3)))
		net, err := Build(m, Options{InputShapes: map[string][]int{"x": {1, 2, hw[0], hw[1]}}})
		if err != nil {
			t.Fatal(err)
		}
		if l := net.Layers(); len(l) != 1 || !tensor.SameShape(l[0].OutShape, []int{1, 3, hw[0], hw[1]}) || l[0].MACs != int64(3*hw[0]*hw[1]*18) {
			t.Fatalf("%v: layers %+v; want one conv with output [1 3 %d %d] and %d MACs", hw, l, hw[0], hw[1], 3*hw[0]*hw[1]*18)
		}
		x := randTensor(rand.New(rand.NewPCG(4, 5)), 2, 2, hw[0], hw[1])
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{2, 3, hw[0] * hw[1]}
		if got := p.Output(); !tensor.SameShape(got.Shape, want) || !equalData(got.Data, p.Value("r").Data) {
			t.Fatalf("%v: output %v; want %v holding the Relu's values", hw, got.Shape, want)
		}
		// h*w does not depend on the batch: folded at build. The batch
		// size is read per pass.
		var kept []string
		for _, nd := range net.nodes {
			kept = append(kept, nd.name)
		}
		if got, want := strings.Join(kept, " "), "conv relu shape g0 u0 cat reshape"; got != want {
			t.Errorf("%v: nodes run: got %q; want %q", hw, got, want)
		}
	}
}

// batchModel is x[N,4,3] with a class token expanded to the batch as
// torch.onnx writes cls.expand(N, -1, -1) (Shape, Gather(0), Concat,
// ConstantOfShape, Mul, Equal, Where, Expand), concatenated with x, split
// on the last axis into [N,5,1] and [N,5,2] whose product is reshaped to
// [N,2,5] and [N,10] with batch-dependent targets, then multiplied by w.
func batchModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{
		"cls": randTensor(rng, 1, 1, 3), "w": randTensor(rng, 10, 4),
		"i0": tensor.FromData([]float64{0}), "ax0": tensor.FromData([]float64{0}, 1), "m1": tensor.FromData([]float64{-1}, 1),
		"three": tensor.FromData([]float64{3}, 1), "neg": tensor.FromData([]float64{-1}), "two": tensor.FromData([]float64{2}, 1),
		"five": tensor.FromData([]float64{5}, 1), "split": tensor.FromData([]float64{1, 2}, 2),
	}
	order := []string{"cls", "w", "i0", "ax0", "m1", "three", "neg", "two", "five", "split"}
	types := map[string]onnx.DataType{"cls": onnx.Float, "w": onnx.Float}
	for _, k := range order[2:] {
		types[k] = onnx.Int64
	}
	one := onnx.Attribute{Name: "value", Type: onnx.AttrTensor, T: tensor.FromData([]float64{1}, 1), TType: onnx.Int64}
	nodes := []onnx.Node{
		mkNode("shape", "Shape", []string{"x"}, []string{"s"}),
		mkNode("g0", "Gather", []string{"s", "i0"}, []string{"n"}),
		mkNode("u0", "Unsqueeze", []string{"n", "ax0"}, []string{"n1"}),
		mkNode("target", "Concat", []string{"n1", "m1", "m1"}, []string{"tg"}, aInt("axis", 0)),
		mkNode("ones", "ConstantOfShape", []string{"three"}, []string{"ones"}, one),
		mkNode("negs", "Mul", []string{"ones", "neg"}, []string{"negs"}),
		mkNode("eq", "Equal", []string{"tg", "negs"}, []string{"eq"}),
		mkNode("where", "Where", []string{"eq", "ones", "tg"}, []string{"sh"}),
		mkNode("expand", "Expand", []string{"cls", "sh"}, []string{"e"}),
		mkNode("cat", "Concat", []string{"e", "x"}, []string{"t"}, aInt("axis", 1)),
		mkNode("split", "Split", []string{"t", "split"}, []string{"a", "b"}, aInt("axis", 2)),
		mkNode("mul", "Mul", []string{"a", "b"}, []string{"p"}),
		mkNode("t2", "Concat", []string{"n1", "two", "five"}, []string{"tg2"}, aInt("axis", 0)),
		mkNode("shuffle", "Reshape", []string{"p", "tg2"}, []string{"r"}),
		mkNode("t3", "Concat", []string{"n1", "m1"}, []string{"tg3"}, aInt("axis", 0)),
		mkNode("flat", "Reshape", []string{"r", "tg3"}, []string{"f"}),
		mkNode("mm", "MatMul", []string{"f", "w"}, []string{"z"}),
	}
	return &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Name:         "batch-shapes",
		Inputs:       []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 4}, {Value: 3}}}},
		Outputs:      []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    types,
		InitOrder:    order,
	}}
}

// batchModelRef computes batchModel directly.
func batchModelRef(cls, w, x *tensor.Tensor) *tensor.Tensor {
	n := x.Shape[0]
	z := tensor.New(n, 4)
	for s := 0; s < n; s++ {
		f := make([]float64, 0, 10)
		for r := 0; r < 5; r++ { // rows of the concatenation [cls; x[s]]
			row := cls.Data
			if r > 0 {
				row = x.Data[(s*4+r-1)*3 : (s*4+r)*3]
			}
			f = append(f, row[0]*row[1], row[0]*row[2])
		}
		for o := 0; o < 4; o++ {
			for i, v := range f {
				z.Data[s*4+o] += v * w.Data[i*4+o]
			}
		}
	}
	return z
}

// TestBatchDependentShapes runs a model whose reshape targets and class
// token expansion depend on the batch size at batches 1 and 3 against a
// direct computation, and checks its gradients against finite differences
// and its Hessian-vector products against finite differences of gradients.
func TestBatchDependentShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 7))
	net, err := Build(batchModel(rng), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var cls, w *tensor.Tensor
	for _, p := range net.Params() {
		switch p.Name {
		case "cls":
			cls = p.Value
		case "w":
			w = p.Value
		}
	}
	if len(net.Params()) != 2 || cls == nil || w == nil {
		t.Fatalf("params %v; want cls and w", net.Params())
	}
	// Everything that reads the batch size runs per pass; ConstantOfShape
	// and the Mul of constants are folded, and so is Equal([N,-1,-1],
	// [-1,-1,-1]), which is [0,1,1] at every batch size.
	var kept []string
	for _, nd := range net.nodes {
		kept = append(kept, nd.name)
	}
	if got, want := strings.Join(kept, " "), "shape g0 u0 target where expand cat split mul t2 shuffle t3 flat mm"; got != want {
		t.Errorf("nodes run: got %q; want %q", got, want)
	}
	for _, n := range []int{1, 3} {
		x := randTensor(rng, n, 4, 3)
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		want := batchModelRef(cls, w, x)
		got := p.Output()
		if !tensor.SameShape(got.Shape, want.Shape) {
			t.Fatalf("batch %d: output shape %v; want %v", n, got.Shape, want.Shape)
		}
		for i := range want.Data {
			if !closeEnough(got.Data[i], want.Data[i]) {
				t.Fatalf("batch %d: z[%d] = %.10g; want %.10g (direct computation)", n, i, got.Data[i], want.Data[i])
			}
		}
		checkNetDerivatives(t, net, x, CrossEntropy{Labels: []int{0, 3, 1}[:n]})
	}
}

// checkNetDerivatives checks the parameter and input gradients of loss
// against central finite differences and one Hessian-vector product
// against finite differences of the gradients.
func checkNetDerivatives(t *testing.T, net *Network, x *tensor.Tensor, loss Loss) {
	t.Helper()
	eval := func() (float64, *Grads) {
		p, err := net.Forward(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		l, gout, err := loss.Eval(p.Output())
		if err != nil {
			t.Fatal(err)
		}
		return l, p.Backward(gout, true)
	}
	_, g := eval()
	vals := [][]float64{x.Data}
	grads := [][]float64{g.Input.Data}
	for i, p := range net.Params() {
		vals, grads = append(vals, p.Value.Data), append(grads, g.Params[i].Data)
	}
	for k, v := range vals {
		for j := range v {
			old := v[j]
			v[j] = old + fdStep
			lp, _ := eval()
			v[j] = old - fdStep
			lm, _ := eval()
			v[j] = old
			if want := (lp - lm) / (2 * fdStep); !closeEnough(grads[k][j], want) {
				t.Fatalf("batch %d: gradient %d[%d]: got %.10g; want %.10g (finite differences)", x.Shape[0], k, j, grads[k][j], want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(9, 9))
	dirs := make([]*tensor.Tensor, len(net.Params()))
	for i, p := range net.Params() {
		dirs[i] = randTensor(rng, append([]int{1}, p.Value.Shape...)...)
	}
	p, err := net.Forward(context.Background(), x)
	if err != nil {
		t.Fatal(err)
	}
	_, hv, err := p.HVP(loss, dirs, 1)
	if err != nil {
		t.Fatal(err)
	}
	shift := func(s float64) {
		for i, p := range net.Params() {
			for j := range p.Value.Data {
				p.Value.Data[j] += s * dirs[i].Data[j]
			}
		}
	}
	shift(fdStep)
	_, gp := eval()
	shift(-2 * fdStep)
	_, gm := eval()
	shift(fdStep)
	for i := range net.Params() {
		for j := range hv[i].Data {
			want := (gp.Params[i].Data[j] - gm.Params[i].Data[j]) / (2 * fdStep)
			if got := hv[i].Data[j]; !closeEnough(got, want) {
				t.Fatalf("batch %d: Hv %d[%d]: got %.10g; want %.10g (finite differences of gradients)", x.Shape[0], i, j, got, want)
			}
		}
	}
}
