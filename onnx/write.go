package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/proto"

	"mpsearch/onnx/internal/onnxpb"
	"mpsearch/tensor"
)

// SaveOptions configures writing. The zero value is the usual choice.
type SaveOptions struct {
	// IRVersion is the ir_version written. Zero picks 10 when the model's
	// opset is 21 or more (INT4 and UINT4 need IR 10) and 8 otherwise; the
	// Model's own IRVersion is not used, since the writer decides what the
	// file contains.
	IRVersion int64
}

// irVersion returns the ir_version to write for m.
func (o SaveOptions) irVersion(m *Model) int64 {
	switch {
	case o.IRVersion != 0:
		return o.IRVersion
	case m.Opset >= 21:
		return 10
	}
	return 8
}

// Save writes m to path as an ONNX protobuf file. The file is written to a
// temporary file in the same directory and renamed into place, so readers
// never see a partial model.
func Save(path string, m *Model, opts SaveOptions) (err error) {
	data, err := Marshal(m, opts)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("onnx: %w", err)
	}
	return nil
}

// Marshal encodes m as a serialized ONNX ModelProto. The output is
// deterministic: initializers follow Graph.InitOrder (then any others in
// name order), attributes are sorted by name, and each initializer is
// stored as raw_data of its Graph.InitTypes element type (FLOAT when
// absent). Values the element type cannot hold exactly are an error
// wrapping ErrNotRepresentable. Graph inputs are the Inputs only;
// initializers are not repeated as inputs (IR version 4 and later).
func Marshal(m *Model, opts SaveOptions) ([]byte, error) {
	if m == nil || m.Graph == nil {
		return nil, errors.New("onnx: marshal: model has no graph")
	}
	if m.Opset < 1 {
		return nil, fmt.Errorf("onnx: marshal: opset %d is not a valid opset version", m.Opset)
	}
	mp := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(opts.irVersion(m)),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(m.Opset)}},
	}
	if m.ProducerName != "" {
		mp.ProducerName = proto.String(m.ProducerName)
	}
	for _, dom := range sortedKeys(m.OtherOpsets) {
		mp.OpsetImport = append(mp.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(dom), Version: proto.Int64(m.OtherOpsets[dom])})
	}
	gp, err := encodeGraph(m.Graph)
	if err != nil {
		return nil, fmt.Errorf("onnx: marshal: %w", err)
	}
	mp.Graph = gp
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(mp)
	if err != nil {
		return nil, fmt.Errorf("onnx: marshal: %w", err)
	}
	return data, nil
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// encodeGraph converts g to a GraphProto. A graph without a name is
// written as "main" (the ONNX checker requires one).
func encodeGraph(g *Graph) (*onnxpb.GraphProto, error) {
	name := g.Name
	if name == "" {
		name = "main"
	}
	gp := &onnxpb.GraphProto{Name: proto.String(name)}

	order := make([]string, 0, len(g.Initializers))
	seen := make(map[string]bool, len(g.Initializers))
	for _, n := range g.InitOrder {
		if _, ok := g.Initializers[n]; !ok {
			return nil, fmt.Errorf("InitOrder names %q, which is not in Initializers", n)
		}
		if seen[n] {
			return nil, fmt.Errorf("InitOrder lists %q twice", n)
		}
		seen[n] = true
		order = append(order, n)
	}
	for _, n := range sortedKeys(g.Initializers) {
		if !seen[n] {
			order = append(order, n)
		}
	}
	for _, n := range order {
		dt, ok := g.InitTypes[n]
		if !ok {
			dt = Float
		}
		tp, err := encodeTensor(g.Initializers[n], dt)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", n, err)
		}
		tp.Name = proto.String(n)
		gp.Initializer = append(gp.Initializer, tp)
	}

	for _, v := range g.Inputs {
		gp.Input = append(gp.Input, encodeValueInfo(v))
	}
	for _, v := range g.Outputs {
		gp.Output = append(gp.Output, encodeValueInfo(v))
	}
	for i := range g.Nodes {
		np, err := encodeNode(&g.Nodes[i])
		if err != nil {
			n := &g.Nodes[i]
			return nil, fmt.Errorf("%s: %w", nodeLabel(i, n.Name, n.OpType), err)
		}
		gp.Node = append(gp.Node, np)
	}
	return gp, nil
}

// encodeValueInfo converts v. Dynamic dimensions are written as their
// Param, or as an unknown dimension (neither value nor param) when they
// have none: giving unnamed dimensions a common name would declare them
// equal.
func encodeValueInfo(v ValueInfo) *onnxpb.ValueInfoProto {
	vp := &onnxpb.ValueInfoProto{Name: proto.String(v.Name)}
	if v.ElemType == Undefined && v.Shape == nil {
		return vp
	}
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(v.ElemType))}
	if v.Shape != nil {
		tt.Shape = &onnxpb.TensorShapeProto{Dim: make([]*onnxpb.TensorShapeProto_Dimension, len(v.Shape))}
		for i, d := range v.Shape {
			dp := &onnxpb.TensorShapeProto_Dimension{}
			switch {
			case d.Value >= 0:
				dp.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
			case d.Param != "":
				dp.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
			}
			tt.Shape.Dim[i] = dp
		}
	}
	vp.Type = &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}}
	return vp
}

// encodeNode converts n, with attributes sorted by name.
func encodeNode(n *Node) (*onnxpb.NodeProto, error) {
	if n.OpType == "" {
		return nil, errors.New("node has no OpType")
	}
	np := &onnxpb.NodeProto{
		Input:  append([]string(nil), n.Inputs...),
		Output: append([]string(nil), n.Outputs...),
		OpType: proto.String(n.OpType),
	}
	if n.Name != "" {
		np.Name = proto.String(n.Name)
	}
	if n.Domain != "" {
		np.Domain = proto.String(n.Domain)
	}
	for _, key := range sortedKeys(n.Attrs) {
		a := n.Attrs[key]
		if a.Name != "" && a.Name != key {
			return nil, fmt.Errorf("attribute stored under %q is named %q", key, a.Name)
		}
		ap, err := encodeAttribute(key, &a)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", key, err)
		}
		np.Attribute = append(np.Attribute, ap)
	}
	return np, nil
}

// encodeAttribute converts a (named name) to an AttributeProto.
func encodeAttribute(name string, a *Attribute) (*onnxpb.AttributeProto, error) {
	ap := &onnxpb.AttributeProto{Name: proto.String(name)}
	switch a.Type {
	case AttrFloat:
		ap.F = proto.Float32(a.F)
	case AttrInt:
		ap.I = proto.Int64(a.I)
	case AttrString:
		ap.S = []byte(a.S)
	case AttrFloats:
		ap.Floats = append([]float32(nil), a.Floats...)
	case AttrInts:
		ap.Ints = append([]int64(nil), a.Ints...)
	case AttrStrings:
		for _, s := range a.Strings {
			ap.Strings = append(ap.Strings, []byte(s))
		}
	case AttrTensor:
		if a.T == nil {
			return nil, errors.New("TENSOR attribute has no tensor")
		}
		tp, err := encodeTensor(a.T, orFloat(a.TType))
		if err != nil {
			return nil, err
		}
		ap.T = tp
	case AttrTensors:
		if len(a.TTypes) != 0 && len(a.TTypes) != len(a.Tensors) {
			return nil, fmt.Errorf("%d tensors but %d TTypes", len(a.Tensors), len(a.TTypes))
		}
		for i, t := range a.Tensors {
			dt := Float
			if len(a.TTypes) != 0 {
				dt = orFloat(a.TTypes[i])
			}
			if t == nil {
				return nil, fmt.Errorf("tensor %d is nil", i)
			}
			tp, err := encodeTensor(t, dt)
			if err != nil {
				return nil, fmt.Errorf("tensor %d: %w", i, err)
			}
			ap.Tensors = append(ap.Tensors, tp)
		}
	case AttrGraph:
		if a.G == nil {
			return nil, errors.New("GRAPH attribute has no graph")
		}
		gp, err := encodeGraph(a.G)
		if err != nil {
			return nil, err
		}
		ap.G = gp
	case AttrGraphs:
		for i, g := range a.Graphs {
			if g == nil {
				return nil, fmt.Errorf("graph %d is nil", i)
			}
			gp, err := encodeGraph(g)
			if err != nil {
				return nil, fmt.Errorf("graph %d: %w", i, err)
			}
			ap.Graphs = append(ap.Graphs, gp)
		}
	default:
		return nil, fmt.Errorf("cannot write attribute kind %v", a.Type)
	}
	ap.Type = onnxpb.AttributeProto_AttributeType(a.Type).Enum()
	return ap, nil
}

func orFloat(dt DataType) DataType {
	if dt == Undefined {
		return Float
	}
	return dt
}

// encodeTensor converts t to a TensorProto of element type dt with
// little-endian raw_data (4-bit types packed two per byte, low nibble
// first).
func encodeTensor(t *tensor.Tensor, dt DataType) (*onnxpb.TensorProto, error) {
	if !dt.Supported() {
		return nil, fmt.Errorf("cannot write element type %v", dt)
	}
	dims := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", t.Shape)
		}
		dims[i] = int64(d)
	}
	if _, n, err := shapeOf(dims); err != nil || n != int64(len(t.Data)) {
		return nil, fmt.Errorf("%d values for shape %v", len(t.Data), t.Shape)
	}
	raw, err := encodeValues(t.Data, dt)
	if err != nil {
		return nil, err
	}
	return &onnxpb.TensorProto{Dims: dims, DataType: proto.Int32(int32(dt)), RawData: raw}, nil
}

// encodeValues packs vals as raw_data of type dt, refusing values dt
// cannot represent exactly. For INT64 (UINT64), 2^63 (2^64) is written as
// the largest value of the type: it is what float64 makes of
// math.MaxInt64 (math.MaxUint64), which models use as "no limit".
func encodeValues(vals []float64, dt DataType) ([]byte, error) {
	raw := make([]byte, dt.rawBytes(int64(len(vals))))
	le := binary.LittleEndian
	lo, hi, isInt := dt.intRange()
	for i, v := range vals {
		if isInt && (v != math.Trunc(v) || v < lo || v > hi) { // NaN fails v == Trunc(v)
			return nil, notRepresentable(v, i, dt)
		}
		switch dt {
		case Int4, Uint4:
			b := byte(int(v)) & 0xf
			if i%2 == 1 {
				b <<= 4
			}
			raw[i/2] |= b
		case Int8, Uint8, Bool:
			raw[i] = byte(int(v))
		case Int16, Uint16:
			le.PutUint16(raw[2*i:], uint16(int(v)))
		case Int32, Uint32:
			le.PutUint32(raw[4*i:], uint32(int64(v)))
		case Int64:
			x := int64(math.MaxInt64)
			if v < hi {
				x = int64(v)
			}
			le.PutUint64(raw[8*i:], uint64(x))
		case Uint64:
			x := uint64(math.MaxUint64)
			if v < hi {
				x = uint64(v)
			}
			le.PutUint64(raw[8*i:], x)
		case Float:
			f := float32(v)
			if float64(f) != v && !math.IsNaN(v) {
				return nil, notRepresentable(v, i, dt)
			}
			le.PutUint32(raw[4*i:], math.Float32bits(f))
		case Double:
			le.PutUint64(raw[8*i:], math.Float64bits(v))
		case Float16:
			h, ok := float64ToHalf(v)
			if !ok {
				return nil, notRepresentable(v, i, dt)
			}
			le.PutUint16(raw[2*i:], h)
		case Bfloat16:
			bits := math.Float32bits(float32(v))
			if math.IsNaN(v) {
				bits = 0x7fc00000
			} else if float64(float32(v)) != v || bits&0xffff != 0 {
				return nil, notRepresentable(v, i, dt)
			}
			le.PutUint16(raw[2*i:], uint16(bits>>16))
		}
	}
	return raw, nil
}

func notRepresentable(v float64, i int, dt DataType) error {
	return errorf(ErrNotRepresentable, "value %v at index %d is not representable as %v", v, i, dt)
}
