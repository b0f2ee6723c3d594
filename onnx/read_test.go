package onnx

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"mpsearch/onnx/internal/onnxpb"
	"mpsearch/tensor"
)

// sumTol is the relative tolerance for sums of initializer values compared
// with numpy's: both add the same float64 values, numpy pairwise and this
// test left to right, so they differ by a few ulps times the number of
// terms (at most 48000 here): far below 1e-9.
const sumTol = 1e-9

// TestLoadLenet checks the Fashion-MNIST LeNet fixture: dynamic batch
// dimension, node order and attributes, and initializer values against
// numbers computed by numpy.
func TestLoadLenet(t *testing.T) {
	m, err := Load("testdata/lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if m.Opset != 13 || m.IRVersion != 7 || m.ProducerName != "pytorch" {
		t.Errorf("opset %d, ir %d, producer %q; want 13, 7, pytorch", m.Opset, m.IRVersion, m.ProducerName)
	}
	g := m.Graph
	wantIn := []ValueInfo{{Name: "input", ElemType: Float, Shape: []Dim{{Value: -1, Param: "batch"}, {Value: 1}, {Value: 28}, {Value: 28}}}}
	if !reflect.DeepEqual(g.Inputs, wantIn) {
		t.Errorf("inputs = %+v; want %+v", g.Inputs, wantIn)
	}
	wantOut := []ValueInfo{{Name: "logits", ElemType: Float, Shape: []Dim{{Value: -1, Param: "batch"}, {Value: 10}}}}
	if !reflect.DeepEqual(g.Outputs, wantOut) {
		t.Errorf("outputs = %+v; want %+v", g.Outputs, wantOut)
	}
	wantNodes := []string{"/conv1/Conv Conv", "/Relu Relu", "/pool/MaxPool MaxPool", "/conv2/Conv Conv", "/Relu_1 Relu",
		"/pool_1/MaxPool MaxPool", "/flatten/Flatten Flatten", "/fc1/Gemm Gemm", "/Relu_2 Relu", "/fc2/Gemm Gemm",
		"/Relu_3 Relu", "/fc3/Gemm Gemm"}
	var gotNodes []string
	for _, n := range g.Nodes {
		gotNodes = append(gotNodes, n.Name+" "+n.OpType)
	}
	if !reflect.DeepEqual(gotNodes, wantNodes) {
		t.Errorf("nodes = %q; want %q", gotNodes, wantNodes)
	}
	conv1 := &g.Nodes[0]
	if got, want := conv1.Inputs, []string{"input", "conv1.weight", "conv1.bias"}; !reflect.DeepEqual(got, want) {
		t.Errorf("conv1 inputs = %q; want %q", got, want)
	}
	if got := conv1.Ints("pads", nil); !reflect.DeepEqual(got, []int64{2, 2, 2, 2}) {
		t.Errorf("conv1 pads = %v; want [2 2 2 2]", got)
	}
	if got := conv1.Int("group", 0); got != 1 {
		t.Errorf("conv1 group = %d; want 1", got)
	}
	if got := g.Nodes[7].Int("transB", 0); got != 1 {
		t.Errorf("fc1 transB = %d; want 1", got)
	}
	if got := g.Nodes[7].Float("alpha", 0); got != 1 {
		t.Errorf("fc1 alpha = %v; want 1", got)
	}

	// Computed with:
	//   /usr/bin/python3 -c "import onnx, numpy as np; from onnx import numpy_helper as nh
	//   for t in onnx.load('lenet.onnx').graph.initializer:
	//       a = nh.to_array(t).astype(np.float64)
	//       print(t.name, list(a.shape), a.sum(), np.abs(a).sum(), a.flat[0], a.flat[-1])"
	// (onnx 1.12, numpy; the first and last values are float32 widened exactly).
	want := []struct {
		name        string
		shape       []int
		sum, absSum float64
		first, last float64
	}{
		{"conv1.weight", []int{6, 1, 5, 5}, -2.617185332812369, 23.263611902482808, -0.28342869877815247, -0.06316673010587692},
		{"conv1.bias", []int{6}, -0.180246165022254, 0.5919147413223982, -0.0248362235724926, 0.03703112527728081},
		{"conv2.weight", []int{16, 6, 5, 5}, -12.537209592408544, 224.78732909877544, -0.04662855342030525, -0.10451145470142365},
		{"conv2.bias", []int{16}, 0.36526347417384386, 1.387052639387548, -0.07424984872341156, -0.021510528400540352},
		{"fc1.weight", []int{120, 400}, -161.00953023826918, 2736.93541925019, 0.03318218141794205, -0.08711491525173187},
		{"fc1.bias", []int{120}, 2.478960656786512, 5.600602334139694, 0.04160989820957184, -0.023510314524173737},
		{"fc2.weight", []int{84, 120}, 2.3307091778979157, 681.1043567194329, -0.045623328536748886, -0.07185497134923935},
		{"fc2.bias", []int{84}, 1.7087967991246842, 5.319174060190562, 0.0031215567141771317, -0.049728188663721085},
		{"fc3.weight", []int{10, 84}, -23.95471029309556, 84.29068014561199, 0.06589920818805695, -0.16396845877170563},
		{"fc3.bias", []int{10}, -0.29055037908256054, 0.9166071247309446, -0.15879949927330017, -0.15097850561141968},
	}
	var order []string
	for _, w := range want {
		order = append(order, w.name)
		tt := g.Initializers[w.name]
		if tt == nil {
			t.Errorf("initializer %q missing", w.name)
			continue
		}
		if !tensor.SameShape(tt.Shape, w.shape) || len(tt.Data) != tensor.Size(w.shape) {
			t.Errorf("%s: shape %v with %d values; want %v", w.name, tt.Shape, len(tt.Data), w.shape)
			continue
		}
		var sum, abs float64
		for _, v := range tt.Data {
			sum += v
			abs += math.Abs(v)
		}
		if !near(sum, w.sum, sumTol*w.absSum) || !near(abs, w.absSum, sumTol*w.absSum) {
			t.Errorf("%s: sum %v, abs sum %v; want %v, %v", w.name, sum, abs, w.sum, w.absSum)
		}
		if tt.Data[0] != w.first || tt.Data[len(tt.Data)-1] != w.last {
			t.Errorf("%s: first %v, last %v; want %v, %v", w.name, tt.Data[0], tt.Data[len(tt.Data)-1], w.first, w.last)
		}
		if g.InitTypes[w.name] != Float {
			t.Errorf("%s: type %v; want FLOAT", w.name, g.InitTypes[w.name])
		}
	}
	if !reflect.DeepEqual(g.InitOrder, order) {
		t.Errorf("InitOrder = %q; want %q", g.InitOrder, order)
	}
	if err := g.CheckFinite(); err != nil {
		t.Errorf("CheckFinite: %v", err)
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestDtypes reads testdata/dtypes.onnx, written by gen_testdata.py with
// the ONNX reference helpers: every supported type stored once in its
// typed field (float_data, int32_data, int64_data, double_data,
// uint64_data) and once in raw_data.
func TestDtypes(t *testing.T) {
	m, err := Load("testdata/dtypes.onnx")
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	if want := []Dim{{Value: -1, Param: "N"}, {Value: 4}}; !reflect.DeepEqual(g.Inputs[0].Shape, want) {
		t.Errorf("input shape %+v; want %+v", g.Inputs[0].Shape, want)
	}
	// The lists of gen_testdata.py, converted to float64 the way the
	// reader must: exactly, except int64 values beyond 2^53, which round
	// to nearest, and float values, which are float32 first.
	cases := []struct {
		name string
		dt   DataType
		want []float64
	}{
		{"float", Float, []float64{-1.5, 0, 3.25, 1.0 / 1024, float64(float32(-3.0e38))}},
		{"double", Double, []float64{-1.5, 0.1, 1e300, math.SmallestNonzeroFloat64}},
		{"float16", Float16, []float64{-1.5, 0, 65504, math.Ldexp(1, -24), math.Ldexp(1, -14), 0.333251953125}},
		{"bfloat16", Bfloat16, []float64{-1.5, 0, 0.15625, math.Ldexp(1, 100), -math.Ldexp(1, -100)}},
		{"int8", Int8, []float64{-128, -1, 0, 127}},
		{"uint8", Uint8, []float64{0, 1, 200, 255}},
		{"int16", Int16, []float64{-32768, -1, 0, 32767}},
		{"uint16", Uint16, []float64{0, 1, 40000, 65535}},
		{"int32", Int32, []float64{-2147483648, -1, 0, 2147483647}},
		{"uint32", Uint32, []float64{0, 1, 3000000000, 4294967295}},
		{"int64", Int64, []float64{-9223372036854775808, -1, 0, 9007199254740993, 9223372036854775807}},
		{"uint64", Uint64, []float64{0, 1, 18446744073709551615}},
		{"bool", Bool, []float64{1, 0, 1}},
	}
	for _, c := range cases {
		for _, form := range []string{"_typed", "_raw"} {
			name := c.name + form
			got, ok := g.Initializers[name]
			if !ok {
				t.Errorf("%s: missing", name)
				continue
			}
			if g.InitTypes[name] != c.dt {
				t.Errorf("%s: type %v; want %v", name, g.InitTypes[name], c.dt)
			}
			if !tensor.SameShape(got.Shape, []int{len(c.want)}) || !reflect.DeepEqual(got.Data, c.want) {
				t.Errorf("%s: got %v %v; want [%d] %v", name, got.Shape, got.Data, len(c.want), c.want)
			}
		}
	}
	if s := g.Initializers["scalar"]; s.Shape != nil || !reflect.DeepEqual(s.Data, []float64{2.5}) {
		t.Errorf("scalar: got %v %v; want nil shape, [2.5]", s.Shape, s.Data)
	}
	if e := g.Initializers["empty"]; !tensor.SameShape(e.Shape, []int{2, 0, 3}) || len(e.Data) != 0 {
		t.Errorf("empty: got %v %v; want [2 0 3] []", e.Shape, e.Data)
	}
	if mt := g.Initializers["matrix_typed"]; !tensor.SameShape(mt.Shape, []int{2, 3}) || !reflect.DeepEqual(mt.Data, []float64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("matrix_typed: got %v %v; want [2 3] [1 2 3 4 5 6]", mt.Shape, mt.Data)
	}
}

// tp builds a TensorProto for hand-made cases.
func tp(name string, dt DataType, dims []int64, set func(*onnxpb.TensorProto)) *onnxpb.TensorProto {
	p := &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: dims}
	if set != nil {
		set(p)
	}
	return p
}

func TestFourBit(t *testing.T) {
	// Five values packed low nibble first: bytes 0x21 (1, 2), 0xf8 (-8 or 8,
	// -1 or 15), 0x07 (7, pad).
	raw := []byte{0x21, 0xf8, 0x07}
	cases := []struct {
		name string
		p    *onnxpb.TensorProto
		dt   DataType
		want []float64
	}{
		{"int4 raw", tp("a", Int4, []int64{5}, func(p *onnxpb.TensorProto) { p.RawData = raw }), Int4, []float64{1, 2, -8, -1, 7}},
		{"uint4 raw", tp("a", Uint4, []int64{5}, func(p *onnxpb.TensorProto) { p.RawData = raw }), Uint4, []float64{1, 2, 8, 15, 7}},
		{"int4 int32_data", tp("a", Int4, []int64{5}, func(p *onnxpb.TensorProto) { p.Int32Data = []int32{0x21, 0xf8, 0x07} }), Int4, []float64{1, 2, -8, -1, 7}},
		{"uint4 int32_data", tp("a", Uint4, []int64{1, 4}, func(p *onnxpb.TensorProto) { p.Int32Data = []int32{0x21, 0xf8} }), Uint4, []float64{1, 2, 8, 15}},
	}
	for _, c := range cases {
		data, err := proto.Marshal(c.p)
		if err != nil {
			t.Fatal(err)
		}
		got, dt, err := ParseTensor(data)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if dt != c.dt || !reflect.DeepEqual(got.Data, c.want) {
			t.Errorf("%s: got %v %v; want %v %v", c.name, dt, got.Data, c.dt, c.want)
		}
	}
}

// TestReadTensor decodes conformance test data. The values were printed
// by onnx.numpy_helper.to_array (onnx 1.12); add_broadcast holds
// uninitialised float64 memory (subnormals) from the original export,
// which makes a bit-exact check of DOUBLE decoding.
func TestReadTensor(t *testing.T) {
	dir := "testdata/conformance/test_operator_addmm/test_data_set_0/"
	in2, dt, err := ReadTensor(dir + "input_2.pb")
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{-0.009842321276664734, -1.4473403692245483, -0.20389927923679352, 0.8737533688545227}
	if dt != Float || !tensor.SameShape(in2.Shape, []int{4}) || !reflect.DeepEqual(in2.Data, want) {
		t.Errorf("addmm input_2: %v %v %v; want FLOAT [4] %v", dt, in2.Shape, in2.Data, want)
	}
	out, _, err := ReadTensor(dir + "output_0.pb")
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(out.Shape, []int{2, 4}) || out.Data[0] != 0.3605502247810364 || out.Data[7] != 4.111241340637207 {
		t.Errorf("addmm output_0: %v first %v last %v; want [2 4] 0.3605502247810364 4.111241340637207", out.Shape, out.Data[0], out.Data[7])
	}

	dir = "testdata/conformance/test_operator_add_broadcast/test_data_set_0/"
	a, dt, err := ReadTensor(dir + "input_0.pb")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := ReadTensor(dir + "input_1.pb")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := ReadTensor(dir + "output_0.pb")
	if err != nil {
		t.Fatal(err)
	}
	if dt != Double || a.Data[0] != 2.0980304e-316 || b.Data[2] != 2.0798788e-316 || a.Data[5] != 5.8568940091729575e+199 {
		t.Errorf("add_broadcast inputs: %v %v %v %v; want DOUBLE, 2.0980304e-316, 2.0798788e-316, 5.8568940091729575e+199", dt, a.Data[0], b.Data[2], a.Data[5])
	}
	// output = input_0 + input_1 broadcast over rows, exactly (the same
	// float64 additions PyTorch made).
	for i := range 2 {
		for j := range 3 {
			if got, want := c.Data[3*i+j], a.Data[3*i+j]+b.Data[j]; got != want {
				t.Errorf("add_broadcast output[%d][%d] = %v; want %v", i, j, got, want)
			}
		}
	}
}

// modelBytes marshals a minimal valid model around the given graph parts.
func modelBytes(t testing.TB, opset int64, inits []*onnxpb.TensorProto, nodes ...*onnxpb.NodeProto) []byte {
	t.Helper()
	mp := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("g"),
			Initializer: inits,
			Node:        nodes,
		},
	}
	data, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseErrors(t *testing.T) {
	lenet, err := os.ReadFile("testdata/lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	f32 := func(n int) func(*onnxpb.TensorProto) {
		return func(p *onnxpb.TensorProto) { p.FloatData = make([]float32, n) }
	}
	cases := []struct {
		name     string
		data     []byte
		sentinel error
		msg      string
	}{
		{"empty file", nil, ErrMalformed, "onnx: empty file"},
		{"truncated", lenet[:len(lenet)/2], ErrMalformed, "onnx: malformed protobuf: "},
		{"truncated header", lenet[:3], ErrMalformed, "onnx: malformed protobuf: "},
		{"random bytes", random, ErrMalformed, "onnx: malformed protobuf: "},
		{"no graph", []byte{0x08, 0x07}, ErrMalformed, "onnx: no graph"},
		{"opset 5", modelBytes(t, 5, nil), ErrUnsupportedOpset, "onnx: opset 5 is not supported (supported: 6 to 21)"},
		{"opset 22", modelBytes(t, 22, nil), ErrUnsupportedOpset, "onnx: opset 22 is not supported (supported: 6 to 21)"},
		{"size mismatch", modelBytes(t, 13, []*onnxpb.TensorProto{tp("fc1.weight", Float, []int64{3, 4}, f32(10))}),
			ErrMalformed, `onnx: initializer "fc1.weight": 10 values for shape [3 4]`},
		{"raw size mismatch", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Int64, []int64{2}, func(p *onnxpb.TensorProto) { p.RawData = make([]byte, 12) })}),
			ErrMalformed, `onnx: initializer "w": raw_data has 12 bytes for shape [2] of INT64; want 16`},
		{"no data", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{2}, nil)}),
			ErrMalformed, `onnx: initializer "w": 0 values for shape [2]`},
		{"unknown dtype", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", 99, []int64{1}, f32(1))}),
			ErrMalformed, `onnx: initializer "w": unknown data type 99`},
		{"string dtype", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", String, []int64{1}, nil)}),
			ErrUnsupported, `onnx: initializer "w": data type STRING is not supported`},
		{"negative dim", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{2, -1}, f32(2))}),
			ErrMalformed, `onnx: initializer "w": negative dimension -1 in shape [2 -1]`},
		{"huge dims", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{1 << 30, 1 << 30, 1 << 30}, f32(1))}),
			ErrMalformed, `onnx: initializer "w": shape [1073741824 1073741824 1073741824] has more than`},
		{"huge dims, little data", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{1 << 20, 1 << 19}, f32(1))}),
			ErrMalformed, `onnx: initializer "w": 1 values for shape [1048576 524288]`},
		{"wrong field", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Int64, []int64{1}, f32(1))}),
			ErrMalformed, `onnx: initializer "w": float_data cannot hold INT64 values`},
		{"two sources", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{1}, func(p *onnxpb.TensorProto) {
			p.FloatData = []float32{1}
			p.RawData = make([]byte, 4)
		})}), ErrMalformed, `onnx: initializer "w": data in both raw_data and float_data`},
		{"duplicate initializer", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{1}, f32(1)), tp("w", Float, []int64{1}, f32(1))}),
			ErrMalformed, `onnx: initializer "w" appears twice`},
		{"unnamed initializer", modelBytes(t, 13, []*onnxpb.TensorProto{tp("", Float, []int64{1}, f32(1))}),
			ErrMalformed, `onnx: initializer 0 has no name`},
		{"node without op", modelBytes(t, 13, nil, &onnxpb.NodeProto{Name: proto.String("n1")}),
			ErrMalformed, `onnx: node "n1" (): node has no op_type`},
		{"bad attribute tensor", modelBytes(t, 13, nil, &onnxpb.NodeProto{OpType: proto.String("Constant"), Attribute: []*onnxpb.AttributeProto{{
			Name: proto.String("value"), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: tp("", Float, []int64{2}, f32(3))}}}),
			ErrMalformed, `onnx: node 0 (Constant): attribute "value": 3 values for shape [2]`},
		{"sparse attribute", modelBytes(t, 13, nil, &onnxpb.NodeProto{OpType: proto.String("Constant"), Attribute: []*onnxpb.AttributeProto{{
			Name: proto.String("sparse_value"), Type: onnxpb.AttributeProto_SPARSE_TENSOR.Enum()}}}),
			ErrUnsupported, `onnx: node 0 (Constant): attribute "sparse_value": SPARSE_TENSOR attributes are not supported`},
		{"external data without dir", modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{1}, external("w.bin", "", ""))}),
			ErrUnsupported, `onnx: initializer "w": external data "w.bin" needs the model's directory`},
	}
	for _, c := range cases {
		m, err := Parse(c.data, "")
		if err == nil {
			t.Errorf("%s: got model %+v; want error", c.name, m)
			continue
		}
		checkErr(t, c.name, err, c.sentinel, c.msg)
	}
}

// checkErr checks that err wraps sentinel, starts with msg and is one line.
func checkErr(t *testing.T, name string, err, sentinel error, msg string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Errorf("%s: error %q does not wrap %v", name, err, sentinel)
	}
	if !strings.HasPrefix(err.Error(), msg) {
		t.Errorf("%s: error %q; want prefix %q", name, err, msg)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error %q spans several lines", name, err)
	}
}

func TestLoadNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	checkErr(t, "Load", err, ErrMalformed, "onnx: "+path+": malformed protobuf: ")
	_, err = Load(filepath.Join(t.TempDir(), "missing.onnx"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v; want an error wrapping os.ErrNotExist", err)
	}
}

// TestOpsetOptions checks the opset range override, and that the ONNX
// conformance models (opset 6) load by default.
func TestOpsetOptions(t *testing.T) {
	path := "testdata/conformance/test_Conv2d/model.onnx"
	if _, err := (LoadOptions{MinOpset: 7}).Load(path); !errors.Is(err, ErrUnsupportedOpset) {
		t.Errorf("Load(opset 6 model) with MinOpset 7 = %v; want ErrUnsupportedOpset", err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Opset != 6 || len(m.Graph.Nodes) != 1 || m.Graph.Nodes[0].OpType != "Conv" {
		t.Errorf("opset %d, nodes %+v; want opset 6 and one Conv", m.Opset, m.Graph.Nodes)
	}
	data := modelBytes(t, 22, nil)
	if _, err := (LoadOptions{MaxOpset: 22}).Parse(data, ""); err != nil {
		t.Errorf("MaxOpset 22: %v", err)
	}
}

// external returns a setter marking a tensor as external data.
func external(loc, offset, length string) func(*onnxpb.TensorProto) {
	return func(p *onnxpb.TensorProto) {
		p.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		kv := func(k, v string) {
			if v != "" {
				p.ExternalData = append(p.ExternalData, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(v)})
			}
		}
		kv("location", loc)
		kv("offset", offset)
		kv("length", length)
	}
}

// TestExternalData reads the model gen_testdata.py saved with
// onnx.save_model(save_as_external_data=True): two initializers in one
// file, at offsets 0 and 24.
func TestExternalData(t *testing.T) {
	m, err := Load("testdata/extdata/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	g := m.Graph
	if w := g.Initializers["w"]; !tensor.SameShape(w.Shape, []int{2, 3}) || !reflect.DeepEqual(w.Data, []float64{0, 0.25, 0.5, 0.75, 1, 1.25}) {
		t.Errorf("w = %v %v; want [2 3] arange(6)/4", w.Shape, w.Data)
	}
	if s := g.Initializers["shape"]; g.InitTypes["shape"] != Int64 || !reflect.DeepEqual(s.Data, []float64{3, -1}) {
		t.Errorf("shape = %v %v; want INT64 [3 -1]", g.InitTypes["shape"], s.Data)
	}
}

func TestExternalDataErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), make([]byte, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.bin"), make([]byte, 16), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret.bin"), filepath.Join(dir, "link.bin")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		set      func(*onnxpb.TensorProto)
		sentinel error
		msg      string
	}{
		{"parent", external("../secret.bin", "", ""), ErrMalformed, `external data location "../secret.bin" is outside the model directory`},
		{"absolute", external(filepath.Join(outside, "secret.bin"), "", ""), ErrMalformed, `external data location "` + filepath.Join(outside, "secret.bin") + `" is outside the model directory`},
		{"symlink out", external("link.bin", "", ""), nil, `external data "link.bin": `},
		{"missing", external("nope.bin", "", ""), os.ErrNotExist, `external data "nope.bin": `},
		{"no location", external("", "0", "16"), ErrMalformed, `external data has no location`},
		{"bad offset", external("w.bin", "-4", ""), ErrMalformed, `external data offset "-4" is not a valid byte count`},
		{"past end", external("w.bin", "20", ""), ErrMalformed, `external data "w.bin": offset 20 is past the end of the 16-byte file`},
		{"too long", external("w.bin", "8", "16"), ErrMalformed, `external data "w.bin": 16 bytes at offset 8, but the file has 16 bytes`},
		{"wrong size", external("w.bin", "", ""), ErrMalformed, `external data "w.bin" has 16 bytes for shape [2] of FLOAT; want 8`},
	}
	for _, c := range cases {
		data := modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{2}, c.set)})
		_, err := Parse(data, dir)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.sentinel != nil && !errors.Is(err, c.sentinel) {
			t.Errorf("%s: error %q does not wrap %v", c.name, err, c.sentinel)
		}
		if want := `onnx: initializer "w": ` + c.msg; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %q; want prefix %q", c.name, err, want)
		}
	}
	// The same file read within bounds works.
	data := modelBytes(t, 13, []*onnxpb.TensorProto{tp("w", Float, []int64{2}, external("w.bin", "8", "8"))})
	if m, err := Parse(data, dir); err != nil {
		t.Errorf("in-bounds external data: %v", err)
	} else if got := m.Graph.Initializers["w"].Data; !reflect.DeepEqual(got, []float64{0, 0}) {
		t.Errorf("in-bounds external data = %v; want [0 0]", got)
	}
}

func TestNodeHelpers(t *testing.T) {
	n := &Node{OpType: "Conv", Attrs: map[string]Attribute{
		"group":    {Name: "group", Type: AttrInt, I: 2},
		"pads":     {Name: "pads", Type: AttrInts, Ints: []int64{1, 1, 1, 1}},
		"alpha":    {Name: "alpha", Type: AttrFloat, F: 0.5},
		"auto_pad": {Name: "auto_pad", Type: AttrString, S: "SAME_UPPER"},
	}}
	cases := []struct {
		name      string
		got, want any
	}{
		{"Int present", n.Int("group", 1), int64(2)},
		{"Int absent", n.Int("axis", 1), int64(1)},
		{"Int of FLOAT", n.Int("alpha", 7), int64(7)},
		{"Ints present", n.Ints("pads", nil), []int64{1, 1, 1, 1}},
		{"Ints absent", n.Ints("strides", []int64{1, 1}), []int64{1, 1}},
		{"Float present", n.Float("alpha", 1), float32(0.5)},
		{"Float absent", n.Float("beta", 1), float32(1)},
		{"Str present", n.Str("auto_pad", "NOTSET"), "SAME_UPPER"},
		{"Str absent", n.Str("mode", "constant"), "constant"},
		{"Has present", n.Has("pads"), true},
		{"Has absent", n.Has("dilations"), false},
	}
	for _, c := range cases {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v; want %v", c.name, c.got, c.want)
		}
	}
	n.Ints("pads", nil)[0] = 9
	if n.Attrs["pads"].Ints[0] != 1 {
		t.Errorf("Ints returned the stored slice; want a copy")
	}
	var empty Node
	if empty.Has("x") || empty.Int("x", 3) != 3 {
		t.Errorf("helpers on a node without attributes should return the defaults")
	}
}

func TestCheckFinite(t *testing.T) {
	g := &Graph{
		Initializers: map[string]*tensor.Tensor{
			"a": tensor.FromData([]float64{1, 2}, 2),
			"b": tensor.FromData([]float64{1, math.Inf(-1)}, 2),
			"c": tensor.FromData([]float64{math.NaN()}, 1),
		},
		InitOrder: []string{"a", "b", "c"},
	}
	err := g.CheckFinite()
	checkErr(t, "CheckFinite", err, ErrNonFinite, `onnx: initializer "b": value -Inf at index 1`)
	g.InitOrder = []string{"a", "c", "b"}
	checkErr(t, "CheckFinite", g.CheckFinite(), ErrNonFinite, `onnx: initializer "c": value NaN at index 0`)
	delete(g.Initializers, "b")
	delete(g.Initializers, "c")
	g.InitOrder = []string{"a"}
	g.Nodes = []Node{{Name: "k", OpType: "Constant", Attrs: map[string]Attribute{"value": {Name: "value", Type: AttrTensor, T: tensor.FromData([]float64{math.NaN()}, 1)}}}}
	checkErr(t, "CheckFinite", g.CheckFinite(), ErrNonFinite, `onnx: node "k" (Constant): attribute "value": value NaN at index 0`)
	g.Nodes = nil
	if err := g.CheckFinite(); err != nil {
		t.Errorf("CheckFinite on finite graph: %v", err)
	}
}

func TestHalf(t *testing.T) {
	// Every binary16 bit pattern except NaNs converts to float64 and back
	// to itself.
	for h := range 1 << 16 {
		v := halfToFloat64(uint16(h))
		if math.IsNaN(v) {
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Errorf("half %#04x decoded to NaN", h)
			}
			continue
		}
		back, ok := float64ToHalf(v)
		if !ok || back != uint16(h) {
			t.Errorf("half %#04x -> %v -> %#04x, %v", h, v, back, ok)
		}
	}
	known := []struct {
		h uint16
		v float64
	}{{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, math.Ldexp(1, -24)}, {0x0400, math.Ldexp(1, -14)}, {0x3555, 0.333251953125}, {0x7c00, math.Inf(1)}}
	for _, k := range known {
		if got := halfToFloat64(k.h); got != k.v {
			t.Errorf("halfToFloat64(%#04x) = %v; want %v", k.h, got, k.v)
		}
	}
	for _, v := range []float64{1 + math.Ldexp(1, -11), 65520, math.Ldexp(1, -25), math.Ldexp(3, -26), 1e-10, 0.1} {
		if h, ok := float64ToHalf(v); ok {
			t.Errorf("float64ToHalf(%v) = %#04x, true; want not representable", v, h)
		}
	}
}
