package onnx

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"mpsearch/onnx/internal/onnxpb"
	"mpsearch/tensor"
)

// testModels lists every model file under testdata.
func testModels(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/conformance/*/model.onnx")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no conformance models: %v", err)
	}
	return append(paths, "testdata/lenet.onnx", "testdata/dtypes.onnx", "testdata/extdata/model.onnx")
}

// TestRoundTrip checks Load -> Save -> Load gives the same IR (apart from
// IRVersion, which Save chooses) for every test model, and that writing
// is deterministic and a fixed point.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	read := LoadOptions{MinOpset: 6} // the conformance models are opset 6
	for _, path := range testModels(t) {
		m, err := read.Load(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		out := filepath.Join(dir, "out.onnx")
		if err := Save(out, m, SaveOptions{}); err != nil {
			t.Errorf("%s: Save: %v", path, err)
			continue
		}
		m2, err := read.Load(out)
		if err != nil {
			t.Errorf("%s: reload: %v", path, err)
			continue
		}
		if m2.IRVersion != 8 {
			t.Errorf("%s: saved ir_version %d; want 8", path, m2.IRVersion)
		}
		m2.IRVersion = m.IRVersion
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("%s: model changed in a round trip:\n got %+v\nwant %+v", path, m2.Graph, m.Graph)
		}
		first, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Marshal(m2, SaveOptions{})
		if err != nil {
			t.Errorf("%s: Marshal: %v", path, err)
			continue
		}
		if !bytes.Equal(first, again) {
			t.Errorf("%s: re-encoding the reloaded model gives different bytes", path)
		}
	}
}

// quantModel is a small QDQ model with 4- and 8-bit weights at opset 21.
func quantModel() *Model {
	g := &Graph{
		Name:    "qdq",
		Inputs:  []ValueInfo{{Name: "x", ElemType: Float, Shape: []Dim{{Value: -1}, {Value: 3}}}},
		Outputs: []ValueInfo{{Name: "y", ElemType: Float, Shape: []Dim{{Value: -1, Param: "batch"}, {Value: 2}}}},
		Nodes: []Node{
			{Name: "dq_w", OpType: "DequantizeLinear", Inputs: []string{"w_q", "w_scale", "w_zero"}, Outputs: []string{"w"},
				Attrs: map[string]Attribute{"axis": {Name: "axis", Type: AttrInt, I: 1}}},
			{Name: "mm", OpType: "MatMul", Inputs: []string{"x", "w"}, Outputs: []string{"y"}, Attrs: map[string]Attribute{}},
		},
		Initializers: map[string]*tensor.Tensor{
			"w_q":     tensor.FromData([]float64{-8, -1, 0, 1, 7, 3}, 3, 2),
			"w_scale": tensor.FromData([]float64{0.5, 0.25}, 2),
			"w_zero":  tensor.FromData([]float64{0, 0}, 2),
			"u4":      tensor.FromData([]float64{0, 15, 5}, 3),
			"i8":      tensor.FromData([]float64{-128, 127}, 2),
			"u8":      tensor.FromData([]float64{0, 255}, 2),
			"i32":     tensor.FromData([]float64{-2147483648, 2147483647}, 2),
			"i64":     tensor.FromData([]float64{-1, 1 << 40}, 2),
		},
		InitTypes: map[string]DataType{"w_q": Int4, "w_zero": Int4, "u4": Uint4, "i8": Int8, "u8": Uint8, "i32": Int32, "i64": Int64},
		InitOrder: []string{"w_q", "w_scale", "w_zero", "u4", "i8", "u8", "i32", "i64"},
	}
	return &Model{Opset: 21, ProducerName: "mpsearch-test", Graph: g}
}

// TestSaveQuantized checks the raw_data encoding of each writable integer
// type against bytes worked out by hand, IR version 10 for opset 21, and
// that unnamed dynamic dimensions stay unnamed.
func TestSaveQuantized(t *testing.T) {
	m := quantModel()
	path := filepath.Join(t.TempDir(), "q.onnx")
	if err := Save(path, m, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		t.Fatal(err)
	}
	if mp.GetIrVersion() != 10 || len(mp.OpsetImport) != 1 || mp.OpsetImport[0].GetVersion() != 21 {
		t.Errorf("ir_version %d, opset_import %v; want 10 and opset 21", mp.GetIrVersion(), mp.OpsetImport)
	}
	// Two's-complement nibbles, low nibble first: (-8, -1) -> 0x8 | 0xf<<4.
	want := map[string][]byte{
		"w_q":     {0xf8, 0x10, 0x37},
		"w_scale": {0, 0, 0, 0x3f, 0, 0, 0x80, 0x3e}, // 0.5 = 0x3f000000, 0.25 = 0x3e800000
		"w_zero":  {0x00},
		"u4":      {0xf0, 0x05},
		"i8":      {0x80, 0x7f},
		"u8":      {0x00, 0xff},
		"i32":     {0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f},
		"i64":     {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1, 0, 0},
	}
	var order []string
	for _, tp := range mp.Graph.Initializer {
		order = append(order, tp.GetName())
		if !bytes.Equal(tp.RawData, want[tp.GetName()]) {
			t.Errorf("%s: raw_data % x; want % x", tp.GetName(), tp.RawData, want[tp.GetName()])
		}
	}
	if !reflect.DeepEqual(order, m.Graph.InitOrder) {
		t.Errorf("initializer order %q; want %q", order, m.Graph.InitOrder)
	}
	dim0 := mp.Graph.Input[0].GetType().GetTensorType().GetShape().GetDim()[0]
	if dim0.GetValue() != nil {
		t.Errorf("unnamed dynamic dimension written as %v; want neither value nor param", dim0)
	}

	m2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m2.IRVersion != 10 {
		t.Errorf("reloaded ir_version %d; want 10", m2.IRVersion)
	}
	m2.IRVersion = 0
	m.Graph.InitTypes["w_scale"] = Float // the writer's default, recorded by the reader
	if !reflect.DeepEqual(m, m2) {
		t.Errorf("reloaded model differs:\n got %+v\nwant %+v", m2.Graph, m.Graph)
	}
}

// TestSubgraphAttributes round-trips every attribute kind, including
// GRAPH (If branches with their own initializers), GRAPHS and TENSORS.
func TestSubgraphAttributes(t *testing.T) {
	branch := func(name string, v float64) *Graph {
		return &Graph{
			Name:         name,
			Outputs:      []ValueInfo{{Name: name + "_out", ElemType: Float, Shape: []Dim{}}},
			Nodes:        []Node{{OpType: "Identity", Inputs: []string{name + "_c"}, Outputs: []string{name + "_out"}, Attrs: map[string]Attribute{}}},
			Initializers: map[string]*tensor.Tensor{name + "_c": tensor.FromData([]float64{v})},
			InitTypes:    map[string]DataType{name + "_c": Float},
			InitOrder:    []string{name + "_c"},
		}
	}
	m := &Model{Opset: 13, OtherOpsets: map[string]int64{"com.example": 1, "ai.onnx.ml": 3}, Graph: &Graph{
		Name:    "main",
		Inputs:  []ValueInfo{{Name: "cond", ElemType: Bool, Shape: []Dim{}}, {Name: "untyped"}},
		Outputs: []ValueInfo{{Name: "y", ElemType: Float}},
		Nodes: []Node{{Name: "if", OpType: "If", Inputs: []string{"cond"}, Outputs: []string{"y"}, Attrs: map[string]Attribute{
			"then_branch": {Name: "then_branch", Type: AttrGraph, G: branch("then", 1)},
			"else_branch": {Name: "else_branch", Type: AttrGraph, G: branch("else", 2)},
		}}, {Name: "custom", OpType: "Thing", Domain: "com.example", Inputs: []string{"", "cond"}, Outputs: []string{"z"}, Attrs: map[string]Attribute{
			"f":  {Name: "f", Type: AttrFloat, F: -0.125},
			"fs": {Name: "fs", Type: AttrFloats, Floats: []float32{1, 2.5}},
			"i":  {Name: "i", Type: AttrInt, I: -7},
			"is": {Name: "is", Type: AttrInts, Ints: []int64{3, -4}},
			"s":  {Name: "s", Type: AttrString, S: "héllo"},
			"ss": {Name: "ss", Type: AttrStrings, Strings: []string{"a", ""}},
			"t":  {Name: "t", Type: AttrTensor, T: tensor.FromData([]float64{1.5, -2}, 2, 1), TType: Float16},
			"ts": {Name: "ts", Type: AttrTensors, Tensors: []*tensor.Tensor{tensor.FromData([]float64{4}, 1), tensor.FromData([]float64{1, 0}, 2)}, TTypes: []DataType{Int64, Bool}},
			"gs": {Name: "gs", Type: AttrGraphs, Graphs: []*Graph{branch("g0", 3), branch("g1", 4)}},
		}}},
		Initializers: map[string]*tensor.Tensor{},
		InitTypes:    map[string]DataType{},
		InitOrder:    []string{},
	}}
	data, err := Marshal(m, SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Parse(data, "")
	if err != nil {
		t.Fatal(err)
	}
	m2.IRVersion = 0
	if !reflect.DeepEqual(m, m2) {
		t.Errorf("round trip changed the model:\n got %+v\nwant %+v", m2.Graph.Nodes, m.Graph.Nodes)
	}
	// Attributes are written sorted by name.
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range mp.Graph.Node[1].Attribute {
		names = append(names, a.GetName())
	}
	if want := []string{"f", "fs", "gs", "i", "is", "s", "ss", "t", "ts"}; !reflect.DeepEqual(names, want) {
		t.Errorf("attribute order %q; want %q", names, want)
	}
	var doms []string
	for _, op := range mp.OpsetImport {
		doms = append(doms, op.GetDomain())
	}
	if want := []string{"", "ai.onnx.ml", "com.example"}; !reflect.DeepEqual(doms, want) {
		t.Errorf("opset_import domains %q; want %q", doms, want)
	}
	for range 3 {
		again, err := Marshal(m, SaveOptions{})
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("Marshal is not deterministic (err %v)", err)
		}
	}
}

func TestNotRepresentable(t *testing.T) {
	cases := []struct {
		v  float64
		dt DataType
		ok bool
	}{
		{-128, Int8, true}, {127, Int8, true}, {128, Int8, false}, {0.5, Int8, false}, {math.NaN(), Int8, false},
		{255, Uint8, true}, {-1, Uint8, false},
		{-8, Int4, true}, {7, Int4, true}, {8, Int4, false}, {-9, Int4, false},
		{15, Uint4, true}, {16, Uint4, false}, {-1, Uint4, false},
		{math.MaxInt32, Int32, true}, {math.MaxInt32 + 1, Int32, false}, {math.Inf(1), Int32, false},
		{1 << 63, Int64, true}, {3 << 62, Int64, false}, {math.MinInt64, Int64, true},
		{0.5, Float, true}, {0.1, Float, false}, {1e40, Float, false}, {math.NaN(), Float, true}, {math.Inf(-1), Float, true},
		{0.1, Double, true},
		{1, Bool, true}, {2, Bool, false},
		{65504, Float16, true}, {1 + 1.0/2048, Float16, false},
		{1 + 1.0/128, Bfloat16, true}, {1 + 1.0/256, Bfloat16, false}, {math.NaN(), Bfloat16, true},
	}
	for _, c := range cases {
		_, err := encodeValues([]float64{0, c.v}, c.dt)
		if c.ok && err != nil {
			t.Errorf("%v as %v: %v; want ok", c.v, c.dt, err)
		}
		if !c.ok && !errors.Is(err, ErrNotRepresentable) {
			t.Errorf("%v as %v: error %v; want ErrNotRepresentable", c.v, c.dt, err)
		}
	}
	// float64 makes 2^63 of math.MaxInt64; it is written back as MaxInt64.
	raw, err := encodeValues([]float64{math.MaxInt64}, Int64)
	if err != nil || !bytes.Equal(raw, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}) {
		t.Errorf("MaxInt64 encodes as % x, %v; want ff ff ff ff ff ff ff 7f", raw, err)
	}
}

func TestSaveErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := quantModel()
	m.Graph.Initializers["i8"].Data[0] = 0.5
	err := Save(path, m, SaveOptions{})
	checkErr(t, "Save", err, ErrNotRepresentable, `onnx: marshal: initializer "i8": value 0.5 at index 0 is not representable as INT8`)
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("failed Save changed the existing file to %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("failed Save left %d files in the directory; want 1", len(entries))
	}

	others := []struct {
		name  string
		edit  func(*Model)
		wants string
	}{
		{"no graph", func(m *Model) { m.Graph = nil }, "onnx: marshal: model has no graph"},
		{"bad opset", func(m *Model) { m.Opset = 0 }, "onnx: marshal: opset 0 is not a valid opset version"},
		{"size", func(m *Model) { m.Graph.Initializers["u8"].Data = []float64{1} }, `onnx: marshal: initializer "u8": 1 values for shape [2]`},
		{"order", func(m *Model) { m.Graph.InitOrder = append(m.Graph.InitOrder, "nope") }, `onnx: marshal: InitOrder names "nope"`},
		{"type", func(m *Model) { m.Graph.InitTypes["u8"] = String }, `onnx: marshal: initializer "u8": cannot write element type STRING`},
		{"attr name", func(m *Model) { m.Graph.Nodes[0].Attrs["axis"] = Attribute{Name: "other", Type: AttrInt} },
			`onnx: marshal: node "dq_w" (DequantizeLinear): attribute stored under "axis" is named "other"`},
		{"attr kind", func(m *Model) { m.Graph.Nodes[0].Attrs["axis"] = Attribute{Type: 11} },
			`onnx: marshal: node "dq_w" (DequantizeLinear): attribute "axis": cannot write attribute kind SPARSE_TENSOR`},
	}
	for _, c := range others {
		m := quantModel()
		c.edit(m)
		_, err := Marshal(m, SaveOptions{})
		if err == nil || !strings.HasPrefix(err.Error(), c.wants) {
			t.Errorf("%s: error %v; want prefix %q", c.name, err, c.wants)
		}
	}

	if err := Save(filepath.Join(dir, "missing", "m.onnx"), quantModel(), SaveOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save into a missing directory: %v; want os.ErrNotExist", err)
	}
}

func TestSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Save(path, quantModel(), SaveOptions{IRVersion: 11}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Save left %d files in the directory; want 1", len(entries))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v; want 0644", fi.Mode().Perm())
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.IRVersion != 11 {
		t.Errorf("ir_version %d; want the 11 of SaveOptions", m.IRVersion)
	}
}
