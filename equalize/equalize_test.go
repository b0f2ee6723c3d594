package equalize

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mpsearch/internal/citest"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// funcTol bounds |logit after - logit before| relative to the largest
// |logit|: equalizing only multiplies weights by factors whose products
// cancel exactly in real arithmetic, so what remains is float64 rounding
// (2^-53 relative per multiplication, a few thousand per weight at most
// over the sweeps, then the network's own sums); 1e-9 is far above that and
// far below any real change of a weight (which moves logits by 1e-3 or more).
const funcTol = 1e-9

// balanceTol bounds |r1 - r2| / max(r1, r2) of every equalized channel
// after convergence: the last sweep moved no factor by more than Tol
// (1e-9), so ranges differ by about that much.
const balanceTol = 1e-6

func node(name, op string, in, out []string, attrs ...onnx.Attribute) onnx.Node {
	m := map[string]onnx.Attribute{}
	for _, a := range attrs {
		m[a.Name] = a
	}
	return onnx.Node{Name: name, OpType: op, Inputs: in, Outputs: out, Attrs: m}
}

func ints(name string, v ...int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInts, Ints: v}
}

func one(name string, v int64) onnx.Attribute {
	return onnx.Attribute{Name: name, Type: onnx.AttrInt, I: v}
}

// unbalanced is a random tensor whose slices along axis have ranges
// spread over two orders of magnitude, as folded BatchNorms leave them.
func unbalanced(rng *rand.Rand, axis int, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	st := tensor.Strides(shape)
	for i := range t.Data {
		c := (i / st[axis]) % shape[axis]
		t.Data[i] = 0.3 * rng.NormFloat64() * math.Pow(10, float64(c%3)-1)
	}
	return t
}

// synthModel runs through every kind of chain: Conv → Relu → MaxPool →
// grouped Conv → LeakyRelu → depthwise Conv → Relu → Flatten → Gemm (transB)
// → Relu → Gemm → MatMul, and three chains that must not be equalized:
// Conv → Clip → Conv, a Relu output read twice (Add), and a value that is
// also a graph output.
func synthModel(rng *rand.Rand) *onnx.Model {
	inits := map[string]*tensor.Tensor{}
	var order []string
	add := func(name string, t *tensor.Tensor) {
		inits[name] = t
		order = append(order, name)
	}
	add("w1", unbalanced(rng, 0, 6, 2, 3, 3))
	add("b1", unbalanced(rng, 0, 6))
	add("w2", unbalanced(rng, 0, 6, 2, 3, 3)) // group 3
	add("b2", unbalanced(rng, 0, 6))
	add("w3", unbalanced(rng, 0, 6, 1, 3, 3)) // depthwise
	add("w4", unbalanced(rng, 0, 5, 6*4*4))   // [out, in], transB
	add("b4", unbalanced(rng, 0, 5))
	add("w5", unbalanced(rng, 1, 5, 7)) // [in, out]
	add("b5", unbalanced(rng, 0, 1, 7))
	add("w6", unbalanced(rng, 1, 7, 4))
	add("w7", unbalanced(rng, 0, 3, 2, 1, 1))
	add("w8", unbalanced(rng, 0, 3, 3, 1, 1))
	add("w9", unbalanced(rng, 0, 3, 2, 1, 1))
	add("w10", unbalanced(rng, 0, 3, 3, 1, 1))
	add("w11", unbalanced(rng, 0, 3, 2, 1, 1))
	add("w12", unbalanced(rng, 0, 3, 3, 1, 1))
	add("lo", tensor.FromData([]float64{0}))
	add("hi", tensor.FromData([]float64{6}))
	nodes := []onnx.Node{
		// c2 and c3 share one bias through Identity nodes, as torch.onnx
		// writes equal folded biases
		node("id2", "Identity", []string{"b2"}, []string{"b2a"}),
		node("id3", "Identity", []string{"b2"}, []string{"b2b"}),
		node("c1", "Conv", []string{"x", "w1", "b1"}, []string{"y1"}, ints("pads", 1, 1, 1, 1)),
		node("r1", "Relu", []string{"y1"}, []string{"a1"}),
		node("p1", "MaxPool", []string{"a1"}, []string{"m1"}, ints("kernel_shape", 2, 2), ints("strides", 2, 2)),
		node("c2", "Conv", []string{"m1", "w2", "b2a"}, []string{"y2"}, ints("pads", 1, 1, 1, 1), one("group", 3)),
		node("r2", "LeakyRelu", []string{"y2"}, []string{"a2"}),
		node("c3", "Conv", []string{"a2", "w3", "b2b"}, []string{"y3"}, ints("pads", 1, 1, 1, 1), one("group", 6)),
		node("r3", "Relu", []string{"y3"}, []string{"a3"}),
		node("f", "Flatten", []string{"a3"}, []string{"fl"}),
		node("g4", "Gemm", []string{"fl", "w4", "b4"}, []string{"y4"}, one("transB", 1)),
		node("r4", "Relu", []string{"y4"}, []string{"a4"}),
		node("g5", "Gemm", []string{"a4", "w5", "b5"}, []string{"y5"}),
		node("m6", "MatMul", []string{"y5", "w6"}, []string{"z"}),
		// side chains on the input, none of them equalizable
		node("c7", "Conv", []string{"x", "w7"}, []string{"y7"}),
		node("clip", "Clip", []string{"y7", "lo", "hi"}, []string{"a7"}),
		node("c8", "Conv", []string{"a7", "w8"}, []string{"z8"}),
		node("c9", "Conv", []string{"x", "w9"}, []string{"y9"}),
		node("r9", "Relu", []string{"y9"}, []string{"a9"}),
		node("c10", "Conv", []string{"a9", "w10"}, []string{"y10"}),
		node("add", "Add", []string{"y10", "a9"}, []string{"z10"}),
		node("c11", "Conv", []string{"x", "w11"}, []string{"y11"}),
		node("c12", "Conv", []string{"y11", "w12"}, []string{"z12"}),
	}
	return &onnx.Model{Opset: 17, Graph: &onnx.Graph{
		Name:   "chains",
		Inputs: []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: -1, Param: "N"}, {Value: 2}, {Value: 8}, {Value: 8}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}, {Name: "z8", ElemType: onnx.Float},
			{Name: "z10", ElemType: onnx.Float}, {Name: "y11", ElemType: onnx.Float}, {Name: "z12", ElemType: onnx.Float}},
		Nodes:        nodes,
		Initializers: inits,
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    order,
	}}
}

func TestSynthChains(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := synthModel(rng)
	before := map[string][]float64{}
	for k, v := range m.Graph.Initializers {
		before[k] = slices.Clone(v.Data)
	}
	eq, rep, err := Model(m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range rep.Pairs {
		got = append(got, p.First+">"+strings.Join(p.Through, ",")+">"+p.Second)
	}
	want := []string{"c1>Relu,MaxPool>c2", "c2>LeakyRelu>c3", "c3>Relu,Flatten>g4", "g4>Relu>g5", "g5>>m6"}
	if !slices.Equal(got, want) {
		t.Fatalf("pairs %q; want %q", got, want)
	}
	if !rep.Converged {
		t.Fatalf("%s", rep)
	}
	for k, v := range m.Graph.Initializers {
		if !slices.Equal(v.Data, before[k]) {
			t.Fatalf("Model changed its input's initializer %s", k)
		}
	}
	for _, n := range eq.Graph.Nodes {
		if (n.Name == "c2" || n.Name == "c3") && n.Inputs[2] != n.Name+".equalized_bias" {
			t.Errorf("%s reads bias %s; want its own copy %s.equalized_bias", n.Name, n.Inputs[2], n.Name)
		}
	}
	for _, k := range []string{"b2", "w7", "w8", "w9", "w10", "w11", "w12"} {
		if eq.Graph.Initializers[k] != m.Graph.Initializers[k] {
			t.Errorf("%s was rescaled; want it left alone (its chain is not equalizable)", k)
		}
	}
	x := tensor.New(3, 2, 8, 8)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	checkSameFunction(t, m, eq, x, nil)
	checkBalanced(t, eq)
}

// TestSinglePair checks one Gemm → Relu → Gemm pair against the paper's
// formula computed here: s_i = sqrt(r1_i / r2_i), W1 row i and b1_i
// divided by s_i, W2 column i multiplied by it; one sweep balances it and
// the second finds every factor 1.
func TestSinglePair(t *testing.T) {
	w1 := tensor.FromData([]float64{1, -2, 0.5, 4, 0, 0, 3, 1, -0.25}, 3, 3) // [out, in]
	b1 := tensor.FromData([]float64{1, 2, 3}, 3)
	w2 := tensor.FromData([]float64{0.5, 8, 1, -1, 0.125, 2}, 3, 2) // [in, out]
	m := &onnx.Model{Opset: 13, Graph: &onnx.Graph{
		Inputs:  []onnx.ValueInfo{{Name: "x", ElemType: onnx.Float, Shape: []onnx.Dim{{Value: 1}, {Value: 3}}}},
		Outputs: []onnx.ValueInfo{{Name: "z", ElemType: onnx.Float}},
		Nodes: []onnx.Node{
			node("a", "Gemm", []string{"x", "w1", "b1"}, []string{"y"}, one("transB", 1)),
			node("r", "Relu", []string{"y"}, []string{"h"}),
			node("b", "Gemm", []string{"h", "w2"}, []string{"z"}),
		},
		Initializers: map[string]*tensor.Tensor{"w1": w1, "b1": b1, "w2": w2},
		InitTypes:    map[string]onnx.DataType{},
		InitOrder:    []string{"w1", "b1", "w2"},
	}}
	eq, rep, err := Model(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pairs) != 1 || rep.Sweeps != 2 || !rep.Converged {
		t.Fatalf("%+v; want one pair converged in 2 sweeps", rep)
	}
	// Row ranges of w1: 2, 4, 3 (row 1's max is 4, row 2's is 3);
	// row ranges of w2 (input channels): 8, 1, 2. s = sqrt(r1/r2).
	s := []float64{math.Sqrt(2.0 / 8), math.Sqrt(4.0 / 1), math.Sqrt(3.0 / 2)}
	g := eq.Graph.Initializers
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			if got, want := g["w1"].Data[i*3+j], w1.Data[i*3+j]/s[i]; got != want {
				t.Errorf("w1[%d,%d] = %g; want %g", i, j, got, want)
			}
		}
		if got, want := g["b1"].Data[i], b1.Data[i]/s[i]; got != want {
			t.Errorf("b1[%d] = %g; want %g", i, got, want)
		}
		for j := 0; j < 2; j++ {
			if got, want := g["w2"].Data[i*2+j], w2.Data[i*2+j]*s[i]; got != want {
				t.Errorf("w2[%d,%d] = %g; want %g", i, j, got, want)
			}
		}
	}
}

// TestModelsKeepFunction equalizes the fixtures and torchvision's
// depthwise networks (BatchNorm folded by the engine first) and compares
// their float64 logits before and after.
func TestModelsKeepFunction(t *testing.T) {
	cases := []struct {
		path  string
		shape []int
		pairs int    // chains the graph has (counted from its layer list)
		note  string // why that many
	}{
		{"../testdata/fmnist-lenet/lenet.onnx", []int{4, 1, 28, 28}, 4, "conv1>conv2, conv2>fc1 (Flatten), fc1>fc2, fc2>fc3"},
		{"../testdata/vgg-fmnist/model.onnx", []int{4, 1, 28, 28}, 6, "5 convolutions in a row, the last to fc1 through Flatten, fc1>fc2"},
		{"../testdata/resnet-fmnist/model.onnx", []int{4, 1, 28, 28}, 6, "each block's conv a>conv b; everything else meets an Add"},
		{"../testdata/dwsep-fmnist/model.onnx", []int{4, 1, 28, 28}, 9, "the 9 convolutions in a row, the last through the pool to fc"},
		{"torchvision/mobilenet_v2-opset17.onnx", []int{1, 3, 224, 224}, -1, "ReLU6 (Clip) blocks every chain but projection > expansion without a shortcut"},
		{"torchvision/mnasnet0_5-opset17.onnx", []int{1, 3, 224, 224}, -1, "MNASNet uses ReLU"},
	}
	for _, c := range cases {
		t.Run(c.path[strings.LastIndex(c.path[:strings.LastIndex(c.path, "/")], "/")+1:], func(t *testing.T) {
			path := c.path
			if name, ok := strings.CutPrefix(path, "torchvision/"); ok {
				if testing.Short() {
					t.Skip("torchvision models in -short")
				}
				path = torchvisionModel(t, name)
			}
			m, err := onnx.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			net, err := network.Build(m, network.Options{})
			if err != nil {
				t.Fatal(err)
			}
			eq, rep, err := Model(net.Model)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s", c.note, rep)
			if c.pairs >= 0 && len(rep.Pairs) != c.pairs {
				t.Errorf("%d pairs; want %d (%s): %+v", len(rep.Pairs), c.pairs, c.note, rep.Pairs)
			}
			if len(rep.Pairs) == 0 || !rep.Converged {
				t.Fatalf("%s", rep)
			}
			for _, p := range rep.Pairs {
				if slices.Contains(p.Through, "Clip") {
					t.Errorf("pair %+v goes through Clip", p)
				}
			}
			rng := rand.New(rand.NewPCG(3, 4))
			x := tensor.New(c.shape...)
			for i := range x.Data {
				x.Data[i] = rng.NormFloat64()
			}
			checkSameFunction(t, net.Model, eq, x, net)
			checkBalanced(t, eq)
		})
	}
}

// checkSameFunction compares every graph output of a and b on x in
// float64 (ref, when given, is a's network already built).
func checkSameFunction(t *testing.T, a, b *onnx.Model, x *tensor.Tensor, ref *network.Network) {
	t.Helper()
	ctx := context.Background()
	for oi, o := range a.Graph.Outputs {
		build := func(m *onnx.Model) *network.Network {
			g := m.Graph.Clone()
			g.Outputs[0], g.Outputs[oi] = g.Outputs[oi], g.Outputs[0]
			net, err := network.Build(&onnx.Model{IRVersion: m.IRVersion, Opset: m.Opset, Graph: g}, network.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return net
		}
		na := ref
		if na == nil || oi > 0 {
			na = build(a)
		}
		ya, err := na.Infer(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		yb, err := build(b).Infer(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		scale, diff := 0.0, 0.0
		for i := range ya.Data {
			scale = math.Max(scale, math.Abs(ya.Data[i]))
			diff = math.Max(diff, math.Abs(ya.Data[i]-yb.Data[i]))
		}
		if diff > funcTol*math.Max(scale, 1) {
			t.Errorf("output %s: max |after - before| = %g (largest |value| %g); want within %g relative", o.Name, diff, scale, funcTol)
		}
	}
}

// checkBalanced recomputes every pair's ranges on the equalized model and
// checks they agree channel by channel.
func checkBalanced(t *testing.T, m *onnx.Model) {
	t.Helper()
	g := m.Graph.Clone()
	for _, p := range findPairs(g) {
		for i := 0; i < p.out.n; i++ {
			r1, r2 := p.out.absMax(i), p.in.absMax(i)
			if r1 == 0 || r2 == 0 {
				continue
			}
			if d := math.Abs(r1-r2) / math.Max(r1, r2); d > balanceTol {
				t.Errorf("%s>%s channel %d: ranges %g and %g; want equal within %g", p.First, p.Second, i, r1, r2, balanceTol)
			}
		}
	}
}

// torchvisionModel is the path of an exported torchvision model (NAME like
// "mobilenet_v2-opset17.onnx"): in $MPSEARCH_TORCHVISION_DIR when set,
// else exported into a temporary folder by scripts/export_torchvision.py
// (random seeded weights). Without python3, torch and torchvision the test
// is skipped, and fails in CI, where it must run.
func torchvisionModel(t *testing.T, name string) string {
	t.Helper()
	if d := os.Getenv("MPSEARCH_TORCHVISION_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	model, _, _ := strings.Cut(name, "-opset")
	dir := t.TempDir()
	cmd := exec.Command("/usr/bin/python3", filepath.Join("..", "scripts", "export_torchvision.py"), "--out", dir, "--models", model, "--opsets", "17")
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("exporting %s: %v: %s (install python3-torch python3-torchvision python3-onnx: scripts/setup.sh --test)", model, err, strings.TrimSpace(string(out)))
		if citest.InCI() {
			t.Fatal("CI: " + msg)
		}
		t.Skip(msg)
	}
	return filepath.Join(dir, name)
}
