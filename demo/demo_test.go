package demo

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"codeberg.org/sbinet/npyio/npz"
	"google.golang.org/protobuf/encoding/protowire"
)

// pixelTol bounds |p - round(p)| for p = (x*std + mean)*255 recovered from a
// normalized float32 image. train_demo.py computes x in float32 in three
// rounded steps from an integer pixel; with |x| <= 2.1 each step's relative
// error of 6e-8 moves p by at most ~1e-5, so 1e-3 is loose yet would catch a
// wrong mean, std or scaling (they move p by whole fractions of a pixel).
const pixelTol = 1e-3

// fixtureCalib is the fmnist-lenet fixture's first 256 normalized training
// images, which must equal the first 256 images of CalibNPZ.
var fixtureCalib = filepath.Join("..", "testdata", "fmnist-lenet", "calib.npy")

func TestEmbeddedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		data   []byte
		prefix []byte
	}{
		// An ONNX ModelProto starts with field 1 (ir_version) as a varint: tag 0x08.
		{"model.onnx", Model(), []byte{0x08}},
		{"calib.npz", CalibNPZ(), []byte("PK\x03\x04")},
		{"test.npz", TestNPZ(), []byte("PK\x03\x04")},
	} {
		if len(tc.data) == 0 {
			t.Errorf("%s: empty", tc.name)
			continue
		}
		if !bytes.HasPrefix(tc.data, tc.prefix) {
			t.Errorf("%s starts with % x; want % x", tc.name, tc.data[:min(len(tc.data), 4)], tc.prefix)
		}
	}
}

func TestAccessorsReturnCopies(t *testing.T) {
	a := Model()
	a[0] ^= 0xff
	if b := Model(); b[0] == a[0] {
		t.Errorf("Model()[0] = %#x after modifying an earlier result; want the original %#x", b[0], a[0]^0xff)
	}
}

func TestMeta(t *testing.T) {
	m, err := Meta()
	if err != nil {
		t.Fatalf("Meta() error: %v", err)
	}
	const eps = 1e-12
	if len(m.Mean) != 1 || math.Abs(m.Mean[0]-0.2860) > eps || len(m.Std) != 1 || math.Abs(m.Std[0]-0.3530) > eps {
		t.Errorf("mean %v, std %v; want [0.286], [0.353] (the fmnist-lenet fixture's normalization)", m.Mean, m.Std)
	}
	if fmt.Sprint(m.InputShape) != "[1 28 28]" {
		t.Errorf("input shape %v; want [1 28 28]", m.InputShape)
	}
	if len(m.Classes) != 10 {
		t.Errorf("%d classes; want 10", len(m.Classes))
	}
	if m.CalibImages != 512 || m.TestImages != 1000 {
		t.Errorf("calib %d, test %d images; want 512, 1000", m.CalibImages, m.TestImages)
	}
	// The demo must be a usefully trained network: the script targets about 90%.
	const minAccuracy = 0.88
	if m.FloatTestAccuracyFull < minAccuracy || m.FloatTestAccuracyDemo < minAccuracy {
		t.Errorf("float accuracy %v (full), %v (demo); want >= %v", m.FloatTestAccuracyFull, m.FloatTestAccuracyDemo, minAccuracy)
	}
	if m.Params <= 0 || m.TrainedWith == "" || len(m.Nodes) == 0 {
		t.Errorf("params %d, trained_with %q, %d nodes; want all set", m.Params, m.TrainedWith, len(m.Nodes))
	}
}

func TestMetaCheckRejects(t *testing.T) {
	good, err := Meta()
	if err != nil {
		t.Fatalf("Meta() error: %v", err)
	}
	for _, tc := range []struct {
		name   string
		modify func(*Metadata)
	}{
		{"std count", func(m *Metadata) { m.Std = nil }},
		{"zero std", func(m *Metadata) { m.Std = []float64{0} }},
		{"shape", func(m *Metadata) { m.InputShape = []int{3, 28, 28} }},
		{"classes", func(m *Metadata) { m.Classes = nil }},
		{"counts", func(m *Metadata) { m.TestImages = 0 }},
		{"accuracy", func(m *Metadata) { m.FloatTestAccuracyDemo = 91.2 }},
	} {
		m := good
		tc.modify(&m)
		if err := m.check(); err == nil {
			t.Errorf("%s: check() = nil; want an error", tc.name)
		}
	}
	if err := fmt.Errorf("%w: x", ErrInvalidMeta); !errors.Is(err, ErrInvalidMeta) {
		t.Errorf("wrapped ErrInvalidMeta not recognised by errors.Is")
	}
}

// readSet reads the arrays x and y of an embedded NPZ, checking their headers.
func readSet(t *testing.T, name string, data []byte, n int) ([]float32, []int64) {
	t.Helper()
	r, err := npz.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, tc := range []struct {
		key, dtype string
		shape      []int
	}{
		{"x.npy", "<f4", []int{n, 1, 28, 28}},
		{"y.npy", "<i8", []int{n}},
	} {
		h := r.Header(tc.key)
		if h == nil {
			t.Fatalf("%s: no array %q (keys %v)", name, tc.key, r.Keys())
		}
		// npyio keeps the quotes of the header's descr string.
		dtype := strings.Trim(h.Descr.Type, `'"`)
		if dtype != tc.dtype || h.Descr.Fortran || fmt.Sprint(h.Descr.Shape) != fmt.Sprint(tc.shape) {
			t.Errorf("%s %s: dtype %s shape %v fortran %v; want %s %v C-order",
				name, tc.key, dtype, h.Descr.Shape, h.Descr.Fortran, tc.dtype, tc.shape)
		}
	}
	var x []float32
	var y []int64
	if err := r.Read("x.npy", &x); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := r.Read("y.npy", &y); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return x, y
}

func TestNPZContents(t *testing.T) {
	m, err := Meta()
	if err != nil {
		t.Fatalf("Meta() error: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		n    int
	}{
		{"calib.npz", CalibNPZ(), m.CalibImages},
		{"test.npz", TestNPZ(), m.TestImages},
	} {
		x, y := readSet(t, tc.name, tc.data, tc.n)
		if len(x) != tc.n*28*28 || len(y) != tc.n {
			t.Fatalf("%s: %d pixels, %d labels; want %d, %d", tc.name, len(x), len(y), tc.n*28*28, tc.n)
		}
		// Every value must be a normalized 8-bit pixel.
		worst := 0.0
		for i, v := range x {
			p := (float64(v)*m.Std[0] + m.Mean[0]) * 255
			r := math.Round(p)
			worst = max(worst, math.Abs(p-r))
			if r < 0 || r > 255 || math.Abs(p-r) > pixelTol {
				t.Fatalf("%s: x[%d] = %v is pixel %v; want an integer in [0,255] within %v", tc.name, i, v, p, pixelTol)
			}
		}
		seen := make([]int, len(m.Classes))
		for i, l := range y {
			if l < 0 || int(l) >= len(m.Classes) {
				t.Fatalf("%s: y[%d] = %d; want a label in [0,%d)", tc.name, i, l, len(m.Classes))
			}
			seen[l]++
		}
		for c, k := range seen {
			if k == 0 {
				t.Errorf("%s: no sample of class %d (%s); want every class present", tc.name, c, m.Classes[c])
			}
		}
		t.Logf("%s: %d samples, worst pixel rounding %.2g, class counts %v", tc.name, tc.n, worst, seen)
	}
}

func TestCalibMatchesFixture(t *testing.T) {
	f, err := os.Open(fixtureCalib)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	defer f.Close()
	var want []float32
	if err := npy.Read(f, &want); err != nil {
		t.Fatalf("%s: %v", fixtureCalib, err)
	}
	m, err := Meta()
	if err != nil {
		t.Fatalf("Meta() error: %v", err)
	}
	got, _ := readSet(t, "calib.npz", CalibNPZ(), m.CalibImages)
	if len(want) != 256*28*28 {
		t.Fatalf("%s: %d values; want %d", fixtureCalib, len(want), 256*28*28)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("calib x[%d] = %v; want %v (fixture calib.npy, same images and normalization)", i, got[i], want[i])
		}
	}
}

// protoFields walks one protobuf message and returns, per field number, the
// raw bytes of its length-delimited values and the values of its varints.
func protoFields(b []byte) (bytesByField map[protowire.Number][][]byte, varints map[protowire.Number][]uint64, err error) {
	bytesByField = map[protowire.Number][][]byte{}
	varints = map[protowire.Number][]uint64{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			bytesByField[num] = append(bytesByField[num], v)
			b = b[n:]
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			varints[num] = append(varints[num], v)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, nil, protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return bytesByField, varints, nil
}

// TestModelStructure reads the ONNX protobuf at the wire level (this package
// may not depend on the project's ONNX reader) and checks it against meta.json.
func TestModelStructure(t *testing.T) {
	m, err := Meta()
	if err != nil {
		t.Fatalf("Meta() error: %v", err)
	}
	// ModelProto: 7 graph, 8 opset_import. OperatorSetIdProto: 1 domain, 2 version.
	// GraphProto: 1 node, 11 input, 12 output. ValueInfoProto and NodeProto: name = 1 / 3.
	top, _, err := protoFields(Model())
	if err != nil {
		t.Fatalf("model.onnx: %v", err)
	}
	if len(top[7]) != 1 || len(top[8]) == 0 {
		t.Fatalf("model.onnx: %d graphs, %d opset imports; want 1 and at least 1", len(top[7]), len(top[8]))
	}
	var opset uint64
	for _, o := range top[8] {
		s, v, err := protoFields(o)
		if err != nil {
			t.Fatalf("opset_import: %v", err)
		}
		if len(s[1]) == 0 || len(s[1][0]) == 0 { // default domain
			opset = v[2][0]
		}
	}
	if opset != 13 {
		t.Errorf("default-domain opset %d; want 13", opset)
	}
	g, _, err := protoFields(top[7][0])
	if err != nil {
		t.Fatalf("graph: %v", err)
	}
	name := func(msg []byte, field protowire.Number) string {
		f, _, err := protoFields(msg)
		if err != nil || len(f[field]) == 0 {
			t.Fatalf("unreadable name in %q: %v", msg, err)
		}
		return string(f[field][0])
	}
	if len(g[11]) != 1 || name(g[11][0], 1) != "input" || len(g[12]) != 1 || name(g[12][0], 1) != "logits" {
		t.Errorf("graph has %d inputs, %d outputs; want one named \"input\", one named \"logits\"", len(g[11]), len(g[12]))
	}
	if len(g[1]) != len(m.Nodes) {
		t.Fatalf("graph has %d nodes; meta.json lists %d", len(g[1]), len(m.Nodes))
	}
	for i, n := range g[1] {
		f, _, err := protoFields(n)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		// NodeProto: 3 name, 4 op_type.
		got := string(f[3][0]) + " (" + string(f[4][0]) + ")"
		if got != m.Nodes[i] {
			t.Errorf("node %d is %q; meta.json says %q", i, got, m.Nodes[i])
		}
	}
}

func ExampleMeta() {
	m, err := Meta()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.InputShape, len(m.Classes), m.Classes[9])
	// Output: [1 28 28] 10 Ankle boot
}
